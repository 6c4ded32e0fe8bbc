"""The local lock store (no bucket): exclusive acquire, foreign locks, stale ETags, release and
archive, read-only dry runs, unlock, and atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from abfsm.errors import EXIT_REFUSED, LockHeld, LockLost, Refused, ReleaseFailed
from abfsm.lock import UNLOCK_ATTEMPTS, LocalStore, Lock
from abfsm.record import RunRecord, new_record
from tests.fakes import FakeClock
from tests.support.lock_race import race_once


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


# --- corrupt records claiming to be abfsm's ---------------------------------------------------

def _corrupt(clock: FakeClock, **changes: object) -> bytes:
    data = json.loads(record(clock, "run-1").to_json())
    data.update(changes)
    return json.dumps(data).encode()


@pytest.mark.parametrize("changes", [{"heartbeat": "yesterday"}, {"settings": "fast"},
                                     {"run_id": None}], ids=["heartbeat", "settings", "run_id"])
def test_a_corrupt_record_is_refused_like_a_foreign_lock_and_left_alone(tmp_path, clock, changes):
    """A lock file claiming kind abfsm.run with wrong types: LockHeld naming it unreadable, untouched."""
    body = _corrupt(clock, **changes)
    lock_file(tmp_path).write_bytes(body)
    with pytest.raises(LockHeld, match=r"qa\.lock is held: an unreadable abfsm lock record \("):
        lock_for(tmp_path, clock).acquire(record(clock, "run-2"))
    assert lock_file(tmp_path).read_bytes() == body


def test_a_corrupt_record_needs_force_to_be_removed(tmp_path, clock):
    """unlock --run-id does not remove an unreadable record; --force does (no archive written)."""
    lock_file(tmp_path).write_bytes(_corrupt(clock, heartbeat="yesterday"))
    with pytest.raises(Refused, match="unreadable abfsm lock record .*only --force"):
        lock_for(tmp_path, clock).remove(run_id="run-1", force=False)
    removed = lock_for(tmp_path, clock).remove(run_id=None, force=True)
    assert removed.record is None and removed.problem.startswith("heartbeat is not a timestamp")
    assert not lock_file(tmp_path).exists() and not (tmp_path / "qa" / "runs").exists()


# --- unlock keeps history; unlock wins over a live heartbeat ----------------------------------

def test_unlock_archives_the_record_as_unlocked(tmp_path, clock):
    """remove() stores qa/runs/<run_id>.json with status unlocked, who, when and what it was."""
    rec = record(clock, "run-1")
    rec.state = "wait-elb"
    lock_for(tmp_path, clock).acquire(rec)
    clock.advance(60)
    removed = lock_for(tmp_path, clock).remove(run_id=None, force=True)
    assert removed.record is not None and removed.record.status == "running"  # as it was
    archived = RunRecord.from_json((tmp_path / "qa" / "runs" / "run-1.json").read_bytes())
    assert archived is not None and archived.status == "unlocked"
    assert archived.unlocked is not None
    assert (archived.unlocked["at"], archived.unlocked["force"]) == ("2026-01-01T12:01:00Z", True)
    assert (archived.unlocked["status"], archived.unlocked["state"]) == ("running", "wait-elb")
    assert archived.unlocked["by"]["user"] and archived.unlocked["by"]["host"]
    assert archived.finished_at == "2026-01-01T12:01:00Z"


class _HeartbeatBeforeDelete:
    """A LocalStore whose first `beats` deletes are preceded by a live run's heartbeat."""

    def __init__(self, store: LocalStore, running: Lock, rec: RunRecord, beats: int) -> None:
        self._store, self._running, self._rec, self.beats = store, running, rec, beats
        self.deletes = 0
        self.where = store.where

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def delete(self, etag: str | None) -> None:
        self.deletes += 1
        if self.beats:
            self.beats -= 1
            self._running.save(self._rec)  # lands between unlock's read and its delete
        self._store.delete(etag)


def test_unlock_force_wins_over_a_heartbeat_between_read_and_delete(tmp_path, clock):
    """A heartbeat between unlock's read and delete: unlock re-reads, retries and removes it;
    the fenced run stops at its next write with LockLost."""
    running, rec = lock_for(tmp_path, clock), record(clock, "run-1")
    running.acquire(rec)
    store = _HeartbeatBeforeDelete(LocalStore(tmp_path, "qa"), running, rec, beats=2)
    removed = Lock(store, clock).remove(run_id=None, force=True)  # type: ignore[arg-type]
    assert removed.record is not None and removed.record.write_seq == 3  # the latest heartbeat
    assert store.deletes == 3 and not lock_file(tmp_path).exists()
    with pytest.raises(LockLost):
        running.save(rec)
    assert not lock_file(tmp_path).exists()


def test_unlock_gives_up_after_a_few_changes(tmp_path, clock):
    """A lock that changes before every delete: refused after UNLOCK_ATTEMPTS tries, lock kept."""
    running, rec = lock_for(tmp_path, clock), record(clock, "run-1")
    running.acquire(rec)
    store = _HeartbeatBeforeDelete(LocalStore(tmp_path, "qa"), running, rec, beats=100)
    with pytest.raises(Refused, match=f"changed {UNLOCK_ATTEMPTS} times while unlocking"):
        Lock(store, clock).remove(run_id=None, force=True)  # type: ignore[arg-type]
    assert store.deletes == UNLOCK_ATTEMPTS and lock_file(tmp_path).exists()
    running.save(rec)  # still the live run's lock


# --- release that cannot delete or archive ----------------------------------------------------

def test_release_that_cannot_archive_keeps_the_lock_with_the_final_status(tmp_path, clock):
    """runs/ cannot be written: ReleaseFailed (exit 1) names the status; the lock says done."""
    lock, rec = lock_for(tmp_path, clock), record(clock, "run-1")
    lock.acquire(rec)
    (tmp_path / "qa").write_text("a file where the runs directory goes")
    rec.state = rec.status = "done"
    with pytest.raises(ReleaseFailed, match=r"run run-1 finished with status done .*could not "
                                            r"archive .*the lock now records status done") as err:
        lock.release(rec)
    assert err.value.exit_code == 1 and err.value.status == "done"
    saved = RunRecord.from_json(lock_file(tmp_path).read_bytes())
    assert saved is not None and saved.status == "done" and lock.held


# --- atomic create under racing acquirers -----------------------------------------------------

@pytest.mark.parametrize("racers", [2, 8])
def test_racing_threads_exactly_one_acquires(tmp_path, clock, racers):
    """Threads released together by a barrier, 20 rounds: exactly one acquires each round."""
    for round_ in range(20):
        winner = race_once(lambda: lock_for(tmp_path, clock),
                           lambda run_id: record(clock, run_id), racers, f"r{round_}")
        holder = RunRecord.from_json(lock_file(tmp_path).read_bytes())
        assert holder is not None and holder.run_id == winner
        lock_file(tmp_path).unlink()


def _race_in_process(state_dir: str, name: str, barrier: Any, rounds: int, queue: Any) -> None:
    from tests.fakes import FakeClock

    clock = FakeClock()
    for round_ in range(rounds):
        barrier.wait(timeout=60)
        lock = Lock(LocalStore(state_dir, "qa"), clock)
        try:
            lock.acquire(new_record("qa", 1, "locked", {}, clock, run_id=f"r{round_}-{name}"))
            queue.put((round_, name))
        except LockHeld:
            queue.put((round_, "held"))
        barrier.wait(timeout=60)  # everyone has tried; the winner of this round ...
        if lock.held:  # (two winners, with a broken store: both unlink)
            lock_file(Path(state_dir)).unlink(missing_ok=True)
        barrier.wait(timeout=60)  # ... has removed the lock before the next round


def test_racing_processes_exactly_one_acquires(tmp_path):
    """4 processes race for the lock file 15 rounds: exactly one acquires each round."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    racers, rounds = 4, 15
    barrier, queue = ctx.Barrier(racers), ctx.Queue()
    procs = [ctx.Process(target=_race_in_process,
                         args=(str(tmp_path), f"p{i}", barrier, rounds, queue))
             for i in range(racers)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in range(racers * rounds)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    for round_ in range(rounds):
        names = [name for r, name in results if r == round_]
        assert len(names) == racers and names.count("held") == racers - 1, (round_, names)
