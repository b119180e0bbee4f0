"""Subprocess for the crash test: puts, forms and acknowledges batches, printing each step only
after the queue call returned, until the parent SIGKILLs it."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta

from agent_testkit import make_reading

from agents.queue import DurableQueue


def main() -> None:
    path, start = sys.argv[1], int(sys.argv[2])
    queue = DurableQueue(path, 10**9, ballast_bytes=0)
    first = queue.next_batch(max_readings=5)
    print(f"R {first.batch_id if first else '-'}", flush=True)
    base = datetime(2017, 11, 1)
    n = start
    while True:
        n += 1
        data_time = (base + timedelta(minutes=n)).strftime("%Y%m%d%H%M%S")
        reading = make_reading(data_time=data_time)
        queue.put([reading])
        print(f"P {reading.id}", flush=True)
        if n % 7 == 0:
            batch = queue.next_batch(max_readings=5)
            ids = " ".join(r["id"] for r in batch.readings)
            print(f"B {batch.batch_id} {ids}", flush=True)
            if n % 14 == 0:
                print(f"a {batch.batch_id}", flush=True)  # about to acknowledge
                queue.ack(batch.batch_id)
                print(f"A {batch.batch_id}", flush=True)


if __name__ == "__main__":
    main()
