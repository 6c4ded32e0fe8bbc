"""The local lock store (no bucket): exclusive acquire, foreign locks, stale ETags, release and
archive, read-only dry runs, unlock, and atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from abfsm.errors import EXIT_REFUSED, LockHeld, LockLost, Refused
from abfsm.lock import LocalStore, Lock
from abfsm.record import RunRecord, new_record
from tests.fakes import FakeClock


def lock_for(path: Path, clock: FakeClock, *, read_only: bool = False) -> Lock:
    return Lock(LocalStore(path, "qa"), clock, read_only=read_only)


def record(clock: FakeClock, run_id: str) -> RunRecord:
    return new_record("qa", 1, "locked", {"environment": "qa"}, clock, run_id=run_id)


def lock_file(path: Path) -> Path:
    return path / "qa.lock"


def temp_files(path: Path) -> list[str]:
    return sorted(p.name for p in path.rglob("*.tmp"))


def test_acquire_writes_the_record_into_the_lock_file(tmp_path, clock):
    """acquire creates qa.lock holding this run's record; the lock is held."""
    lock = lock_for(tmp_path, clock)
    lock.acquire(record(clock, "run-1"))
    saved = RunRecord.from_json(lock_file(tmp_path).read_bytes())
    assert saved is not None and saved.run_id == "run-1" and lock.held


def test_second_acquire_is_refused_naming_the_holder(tmp_path, clock):
    """A second acquire raises LockHeld (exit 3) naming run, user@host, status and state."""
    lock_for(tmp_path, clock).acquire(record(clock, "run-1"))
    before = lock_file(tmp_path).read_bytes()
    second = lock_for(tmp_path, clock)
    with pytest.raises(LockHeld) as err:
        second.acquire(record(clock, "run-2"))
    text = str(err.value)
    assert "run run-1 by " in text and "@" in text and "status running in state locked" in text
    assert err.value.exit_code == EXIT_REFUSED
    assert lock_file(tmp_path).read_bytes() == before and not second.held


@pytest.mark.parametrize("body", [b"", b"frozen by ops\n"])
def test_foreign_lock_is_reported_with_its_age_and_left_alone(tmp_path, clock, body):
    """A lock abfsm did not write (empty / a note) is refused, with size and age, untouched."""
    path = lock_file(tmp_path)
    path.write_bytes(body)
    hour_ago = clock.now().timestamp() - 3600
    os.utime(path, (hour_ago, hour_ago))
    with pytest.raises(LockHeld) as err:
        lock_for(tmp_path, clock).acquire(record(clock, "run-1"))
    assert f"a lock abfsm did not write ({len(body)} bytes, 3600 s old" in str(err.value)
    assert path.read_bytes() == body
    assert os.stat(path).st_mtime == hour_ago


def test_save_with_a_stale_etag_raises_lock_lost(tmp_path, clock):
    """If the lock file changed under the run, its next save raises LockLost and keeps theirs."""
    lock = lock_for(tmp_path, clock)
    rec = record(clock, "run-1")
    lock.acquire(rec)
    lock_file(tmp_path).write_bytes(b"frozen by ops")
    rec.state = "scale"
    with pytest.raises(LockLost, match="removed or replaced while run run-1 held it"):
        lock.save(rec)
    assert lock_file(tmp_path).read_bytes() == b"frozen by ops" and not lock.held


def test_save_after_the_lock_was_deleted_raises_lock_lost_and_creates_nothing(tmp_path, clock):
    """A force-unlocked run's next save raises LockLost and does not re-create the lock."""
    lock = lock_for(tmp_path, clock)
    rec = record(clock, "run-1")
    lock.acquire(rec)
    lock_file(tmp_path).unlink()
    with pytest.raises(LockLost):
        lock.save(rec)
    assert not lock_file(tmp_path).exists()


def test_save_updates_record_and_heartbeat(tmp_path, clock):
    """save rewrites the lock with the new state and a heartbeat from the clock."""
    lock = lock_for(tmp_path, clock)
    rec = record(clock, "run-1")
    lock.acquire(rec)
    clock.advance(45)
    rec.state = "wait-elb"
    lock.save(rec)
    lock.save(rec)  # consecutive saves keep working (the ETag follows)
    saved = RunRecord.from_json(lock_file(tmp_path).read_bytes())
    assert saved is not None and saved.state == "wait-elb"
    assert saved.heartbeat == "2026-01-01T12:00:45Z"


def test_release_archives_the_record_and_removes_the_lock(tmp_path, clock):
    """release writes qa/runs/<run_id>.json and deletes qa.lock."""
    lock = lock_for(tmp_path, clock)
    rec = record(clock, "run-1")
    lock.acquire(rec)
    rec.status = "done"
    lock.release(rec)
    archived = RunRecord.from_json((tmp_path / "qa" / "runs" / "run-1.json").read_bytes())
    assert archived is not None and archived.status == "done"
    assert not lock_file(tmp_path).exists() and not lock.held
    assert [r["run_id"] for r in lock.history()] == ["run-1"]


def test_release_after_someone_replaced_the_lock_leaves_it(tmp_path, clock):
    """If the lock is no longer this run's, release raises LockLost and leaves their lock."""
    lock = lock_for(tmp_path, clock)
    rec = record(clock, "run-1")
    lock.acquire(rec)
    other = record(clock, "run-2")
    lock_file(tmp_path).write_bytes(other.to_json())
    with pytest.raises(LockLost, match="no longer run run-1's"):
        lock.release(rec)
    assert RunRecord.from_json(lock_file(tmp_path).read_bytes()).run_id == "run-2"  # type: ignore[union-attr]


def test_read_only_lock_never_writes(tmp_path, clock):
    """A dry run's lock checks the lock is free but creates no file or directory at all."""
    state = tmp_path / "state"
    lock = lock_for(state, clock, read_only=True)
    rec = record(clock, "run-1")
    lock.acquire(rec)
    lock.save(rec)
    lock.release(rec)
    assert not state.exists() and not lock.held


def test_read_only_lock_still_refuses_when_held(tmp_path, clock):
    """A dry run against a held environment is refused (LockHeld), changing nothing."""
    lock_for(tmp_path, clock).acquire(record(clock, "run-1"))
    before = lock_file(tmp_path).read_bytes()
    with pytest.raises(LockHeld, match="run run-1"):
        lock_for(tmp_path, clock, read_only=True).acquire(record(clock, "run-2"))
    assert lock_file(tmp_path).read_bytes() == before


def test_unlock_with_the_wrong_run_id_is_refused(tmp_path, clock):
    """Lock.remove with another run id is refused naming the holder; the lock stays."""
    lock_for(tmp_path, clock).acquire(record(clock, "run-1"))
    with pytest.raises(Refused, match="held by run run-1, not run-9; nothing removed"):
        lock_for(tmp_path, clock).remove(run_id="run-9", force=False)
    assert lock_file(tmp_path).exists()


def test_unlock_with_the_right_run_id_removes_it(tmp_path, clock):
    """Lock.remove with the holder's run id deletes the lock and returns what it removed."""
    lock_for(tmp_path, clock).acquire(record(clock, "run-1"))
    removed = lock_for(tmp_path, clock).remove(run_id="run-1", force=False)
    assert removed.record is not None and removed.record.run_id == "run-1"
    assert not lock_file(tmp_path).exists()


def test_unlock_of_a_foreign_lock_needs_force(tmp_path, clock):
    """A manual freeze is not removed by --run-id; only --force removes it."""
    lock_file(tmp_path).write_bytes(b"frozen by ops")
    with pytest.raises(Refused, match="only --force"):
        lock_for(tmp_path, clock).remove(run_id="run-1", force=False)
    assert lock_file(tmp_path).read_bytes() == b"frozen by ops"
    removed = lock_for(tmp_path, clock).remove(run_id=None, force=True)
    assert removed.record is None and removed.size == 13
    assert not lock_file(tmp_path).exists()


def test_unlock_with_no_lock_is_refused(tmp_path, clock):
    """Unlocking a free environment is refused and says it is free."""
    with pytest.raises(Refused, match="environment is free"):
        lock_for(tmp_path, clock).remove(run_id=None, force=True)


def test_writes_leave_no_temp_files_behind(tmp_path, clock):
    """acquire, a failed acquire, saves and release leave no *.tmp file in the state dir."""
    lock = lock_for(tmp_path, clock)
    rec = record(clock, "run-1")
    lock.acquire(rec)
    with pytest.raises(LockHeld):
        lock_for(tmp_path, clock).acquire(record(clock, "run-2"))
    for state in ("inspect", "scale", "drain"):
        rec.state = state
        lock.save(rec)
    lock.release(rec)
    assert temp_files(tmp_path) == []


def test_save_replaces_the_file_instead_of_rewriting_it(tmp_path, clock):
    """A save installs a new file by rename (new inode): a reader never sees a half-written lock."""
    lock = lock_for(tmp_path, clock)
    rec = record(clock, "run-1")
    lock.acquire(rec)
    before = os.stat(lock_file(tmp_path)).st_ino
    old = open(lock_file(tmp_path), "rb")  # a reader holding the old file keeps a whole record
    try:
        rec.state = "wait-elb"
        lock.save(rec)
        assert os.stat(lock_file(tmp_path)).st_ino != before
        assert RunRecord.from_json(old.read()).state == "locked"  # type: ignore[union-attr]
    finally:
        old.close()


def test_history_skips_unreadable_archives(tmp_path, clock):
    """A corrupt file under runs/ does not break the run history."""
    lock = lock_for(tmp_path, clock)
    rec = record(clock, "run-1")
    lock.acquire(rec)
    lock.release(rec)
    (tmp_path / "qa" / "runs" / "run-0.json").write_text("not json")
    assert [r["run_id"] for r in lock.history()] == ["run-1"]
