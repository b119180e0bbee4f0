"""Landing without HTTP: layout, index, duplicates, races between replicas, tamper evidence."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import CEMS_MN, index_count, landed_files, make_batch

from ingest.landing import (
    EvidenceMissing,
    EvidenceTampered,
    Landing,
    LandingIndex,
    PayloadError,
    PayloadTooLarge,
    check_names,
    gunzip_limited,
    publish,
    stored_bytes,
)
from schemas.reading import BEIJING

T0 = datetime(2017, 11, 1, 8, 0, tzinfo=BEIJING)  # 2017-11-01 00:00 UTC


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'index.sqlite'}"


def fixed_clock(moment: datetime):  # noqa: ANN201 - a clock
    return lambda: moment


def test_land_layout_index_and_read_back(tmp_path: Path) -> None:
    landing = Landing(
        tmp_path / "landing", _url(tmp_path), clock=fixed_clock(T0 + timedelta(days=3))
    )
    batch = make_batch(start=T0, n=10)
    result = landing.land(batch)
    assert result.status == "landed" and result.n_readings == 10 and result.seq == 1
    assert result.path == f"2017-11-04/{CEMS_MN}/{batch['batch_id']}.json.gz"
    stored = (tmp_path / "landing" / result.path).read_bytes()
    assert result.sha256 == hashlib.sha256(stored).hexdigest()
    assert json.loads(gzip.decompress(stored)) == batch
    [entry] = landing.batches()
    assert entry.first_data_time == datetime(2017, 11, 1, 0, 0, tzinfo=UTC)
    assert entry.last_data_time == datetime(2017, 11, 1, 0, 9, tzinfo=UTC)
    assert entry.landed_at == T0 + timedelta(days=3)
    assert landing.read_batch(entry) == batch


def test_landing_day_is_utc_not_beijing(tmp_path: Path) -> None:
    # 2017-11-02 07:30 in Beijing is still 2017-11-01 in UTC.
    moment = datetime(2017, 11, 2, 7, 30, tzinfo=BEIJING)
    landing = Landing(tmp_path / "landing", _url(tmp_path), clock=fixed_clock(moment))
    assert landing.land(make_batch(start=T0)).path.startswith("2017-11-01/")


def test_duplicate_writes_nothing(tmp_path: Path) -> None:
    landing = Landing(tmp_path / "landing", _url(tmp_path), clock=fixed_clock(T0))
    batch = make_batch(start=T0)
    first = landing.land(batch, gzip.compress(json.dumps(batch).encode()))
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "landing").rglob("*")}
    landing.clock = fixed_clock(T0 + timedelta(days=1))  # a day later: still the same batch
    second = landing.land(batch)
    assert second.status == "duplicate"
    assert (second.seq, second.path, second.sha256) == (first.seq, first.path, first.sha256)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "landing").rglob("*")} == before


def test_batches_overlap_by_data_time(tmp_path: Path) -> None:
    landing = Landing(tmp_path / "landing", _url(tmp_path), clock=fixed_clock(T0))
    # Three batches of 5 minutes at 00:00, 01:00, 02:00 UTC; the third is ambient-like in stream.
    a, b, c = (landing.land(make_batch(start=T0 + timedelta(hours=h), n=5)) for h in range(3))
    utc = lambda h, m: datetime(2017, 11, 1, h, m, tzinfo=UTC)  # noqa: E731
    seqs = lambda **q: [e.seq for e in landing.batches(**q)]  # noqa: E731
    assert seqs() == [a.seq, b.seq, c.seq]
    # [start, end): a batch ending exactly at start overlaps (its last reading is in range) …
    assert seqs(start=utc(0, 4), end=utc(1, 0)) == [a.seq]
    # … one starting exactly at end does not.
    assert seqs(start=utc(0, 5), end=utc(1, 0)) == []
    assert seqs(start=utc(1, 4)) == [b.seq, c.seq]
    assert seqs(
        end=utc(
            1,
            0,
        )
    ) == [a.seq]
    assert seqs(after_seq=a.seq) == [b.seq, c.seq]
    assert seqs(start=utc(0, 0), end=utc(3, 0), after_seq=b.seq) == [c.seq]
    # Bounds in Beijing time mean the same instants.
    assert seqs(
        start=datetime(2017, 11, 1, 9, 0, tzinfo=BEIJING),
        end=datetime(2017, 11, 1, 9, 1, tzinfo=BEIJING),
    ) == [b.seq]
    assert seqs(stream="ambient") == []
    with pytest.raises(ValueError, match="timezone-aware"):
        landing.batches(start=datetime(2017, 11, 1))


def test_tampered_and_missing_evidence_are_named(tmp_path: Path) -> None:
    landing = Landing(tmp_path / "landing", _url(tmp_path), clock=fixed_clock(T0))
    kept, changed, lost = (
        landing.land(make_batch(start=T0 + timedelta(hours=h))) for h in range(3)
    )
    path = tmp_path / "landing" / changed.path
    os.chmod(path, 0o640)
    data = bytearray(path.read_bytes())
    data[30] ^= 0xFF
    path.write_bytes(bytes(data))
    (tmp_path / "landing" / lost.path).unlink()

    index = LandingIndex(_url(tmp_path), tmp_path / "landing")
    entries = {e.batch_id: e for e in index.batches()}
    assert index.read_batch(entries[kept.batch_id])["batch_id"] == kept.batch_id
    with pytest.raises(EvidenceTampered, match=f"evidence tampered: .*{changed.batch_id}"):
        index.read_batch(entries[changed.batch_id])
    with pytest.raises(EvidenceMissing, match=lost.batch_id):
        index.read_batch(entries[lost.batch_id])
    report = index.verify()
    assert (report.checked, report.tampered, report.missing) == (3, [changed.path], [lost.path])
    assert not report.ok


def test_two_replicas_racing_land_each_batch_once(tmp_path: Path) -> None:
    """Two Landing objects (two replicas) on one root and index, the same batches at once."""
    root, url = tmp_path / "landing", _url(tmp_path)
    replicas = [Landing(root, url), Landing(root, url)]
    batches = [make_batch(start=T0 + timedelta(hours=h), n=3) for h in range(25)]
    results: dict[int, list[str]] = {i: [] for i in range(len(batches))}
    barrier = threading.Barrier(2)

    def run(replica: Landing) -> None:
        for i, batch in enumerate(batches):
            barrier.wait()
            results[i].append(replica.land(batch).status)

    threads = [threading.Thread(target=run, args=(r,)) for r in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(sorted(statuses) == ["duplicate", "landed"] for statuses in results.values())
    assert index_count(url) == 25 and len(landed_files(root)) == 25
    report = LandingIndex(url, root).verify()
    assert report.ok and report.checked == 25 and not report.unindexed and not report.temporaries


class _RacingLanding(Landing):
    """A replica whose duplicate check ran before the winner committed (the race window)."""

    def get(self, batch_id: str):  # noqa: ANN201
        if getattr(self, "_blind", True):
            self._blind = False
            return None
        return super().get(batch_id)


def test_race_across_utc_midnight_loser_removes_only_its_own_file(tmp_path: Path) -> None:
    root, url = tmp_path / "landing", _url(tmp_path)
    batch = make_batch(start=T0)
    winner = Landing(root, url, clock=fixed_clock(datetime(2017, 11, 1, 23, 59, 59, tzinfo=UTC)))
    won = winner.land(batch)
    winner_file = root / won.path
    inode = winner_file.stat().st_ino
    loser = _RacingLanding(root, url, clock=fixed_clock(datetime(2017, 11, 2, 0, 0, 1, tzinfo=UTC)))
    lost = loser.land(batch)
    assert lost.status == "duplicate" and lost.path == won.path
    assert landed_files(root) == [winner_file] and winner_file.stat().st_ino == inode
    assert not (root / "2017-11-02" / CEMS_MN / f"{batch['batch_id']}.json.gz").exists()
    assert LandingIndex(url, root).verify().ok


def test_race_on_the_same_path_never_replaces_the_winners_file(tmp_path: Path) -> None:
    root, url = tmp_path / "landing", _url(tmp_path)
    batch = make_batch(start=T0)
    winner = Landing(root, url, clock=fixed_clock(T0))
    body = gzip.compress(json.dumps(batch).encode(), compresslevel=9)  # bytes only the winner has
    won = winner.land(batch, body)
    loser = _RacingLanding(root, url, clock=fixed_clock(T0))
    assert loser.land(batch).status == "duplicate"
    assert (root / won.path).read_bytes() == body
    assert LandingIndex(url, root).read_batch(LandingIndex(url, root).batches()[0]) == batch


def test_file_published_before_a_crash_is_indexed_on_retry(tmp_path: Path) -> None:
    """Crash between publish and index: the retry indexes the file that is there."""
    root, url = tmp_path / "landing", _url(tmp_path)
    batch = make_batch(start=T0)
    leftover = gzip.compress(json.dumps(batch).encode(), compresslevel=1)
    final = root / "2017-11-01" / CEMS_MN / f"{batch['batch_id']}.json.gz"
    final.parent.mkdir(parents=True)
    assert publish(final, leftover) is True
    assert LandingIndex(url, root).verify().unindexed == [final.relative_to(root).as_posix()]
    result = Landing(root, url, clock=fixed_clock(T0)).land(batch)
    assert result.status == "landed"
    assert result.sha256 == hashlib.sha256(leftover).hexdigest()
    assert LandingIndex(url, root).verify().ok


def test_publish_does_not_replace_and_leaves_no_temporaries(tmp_path: Path) -> None:
    final = tmp_path / "x.json.gz"
    assert publish(final, b"first") is True
    assert publish(final, b"second") is False
    assert final.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json.gz"]


def test_gunzip_limited() -> None:
    two_members = gzip.compress(b'{"a":') + gzip.compress(b"1}")
    assert gunzip_limited(two_members, 100) == b'{"a":1}'
    assert gunzip_limited(gzip.compress(b"x" * 100), 100) == b"x" * 100  # exactly the limit
    with pytest.raises(PayloadTooLarge):
        gunzip_limited(gzip.compress(b"x" * 101), 100)
    with pytest.raises(PayloadError, match="truncated"):
        gunzip_limited(gzip.compress(b"x" * 50)[:-4], 100)
    with pytest.raises(PayloadError, match="malformed"):
        gunzip_limited(gzip.compress(b"x") + b"garbage", 100)
    with pytest.raises(PayloadError):
        gunzip_limited(b"", 100)


def test_identity_bodies_gzip_identically_on_every_replica() -> None:
    batch = make_batch(start=T0)
    body = json.dumps(batch).encode()
    assert stored_bytes(batch, body) == stored_bytes(batch, body)
    gzipped = gzip.compress(body)
    assert stored_bytes(batch, gzipped) is gzipped


@pytest.mark.parametrize(
    ("device_id", "batch_id"),
    [
        ("../etc", "0" * 32),
        (".hidden", "0" * 32),
        ("a/b", "0" * 32),
        ("ok", "../" + "0" * 29),
        ("ok", "A" * 32),
    ],
)
def test_ids_that_would_escape_the_tree_are_refused(device_id: str, batch_id: str) -> None:
    with pytest.raises(ValueError):
        check_names(device_id, batch_id)


def test_read_side_imports_no_web_framework() -> None:
    """The pipeline imports ingest.landing: it must not drag FastAPI, uvicorn or pandas in."""
    import subprocess
    import sys

    probe = (
        "import sys, ingest.landing, ingest.registry;"
        "bad = [m for m in ('fastapi', 'starlette', 'uvicorn', 'pandas', 'airflow') if m in sys.modules];"
        "print(', '.join(bad)); sys.exit(1 if bad else 0)"
    )
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", probe], cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
