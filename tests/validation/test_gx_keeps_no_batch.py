"""After a validation, the GX context keeps no frame of it: a district day is gigabytes, and a
process validating day after day (a backfill, the benchmark, a test month) would hold the last
one until the next replaced it."""

from __future__ import annotations

import gc

import pandas as pd

from tests.validation.frames import measurements

MINUTES = 997  # an unusual length, to recognise the frames derived from this input


def frames_of_length(n_rows: int, n_columns_min: int = 3) -> int:
    gc.collect()
    return sum(
        1
        for obj in gc.get_objects()
        # type(), not isinstance(): some live objects are lazy proxies whose __class__ imports
        if issubclass(type(obj), pd.DataFrame)
        and len(obj) == n_rows
        and obj.shape[1] >= n_columns_min
    )


def test_no_frame_of_a_validated_partition_outlives_it(validate):
    frame = measurements("CEMS001", "cems", minutes=MINUTES)
    n_rows = len(frame)
    outcome = validate("cems", frame)
    assert len(outcome.rows) == n_rows and int(outcome.rows["valid"].sum()) > 0
    # GX saw the readings batch (one row per reading) and the value batch (every row)
    del outcome, frame
    assert frames_of_length(n_rows) == 0
    assert frames_of_length(MINUTES) == 0
