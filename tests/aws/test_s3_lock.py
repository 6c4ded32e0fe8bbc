"""The environment lock over S3 (abfsm.lock.S3Store + Lock) against in-process moto."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from abfsm.errors import AwsError, LockHeld, LockLost, Refused, ReleaseFailed
from abfsm.lock import Lock, S3Store
from abfsm.record import RunRecord, new_record
from tests.fakes import FakeClock
from tests.support.lock_race import race_once

BUCKET = "abfsm-locks"
KEY = "qa.lock"


@pytest.fixture
def s3(aws: Any) -> Any:
    """A raw boto3 S3 client on a fresh lock bucket."""
    client = aws("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def new_lock(services: Any, s3: Any, clock: FakeClock) -> Any:
    def make(*, read_only: bool = False, lock_clock: Any = None) -> Lock:
        return Lock(S3Store(services.s3, BUCKET, "qa"), lock_clock or clock, read_only=read_only)
    return make


def record(clock: FakeClock, run_id: str | None = None) -> RunRecord:
    return new_record("qa", 1, "locked", {"environment": "qa"}, clock, run_id=run_id)


def stored(s3: Any, key: str = KEY) -> tuple[bytes, str]:
    got = s3.get_object(Bucket=BUCKET, Key=key)
    return got["Body"].read(), got["ETag"].strip('"')


def lock_exists(s3: Any) -> bool:
    return s3.list_objects_v2(Bucket=BUCKET, Prefix=KEY).get("KeyCount", 0) > 0


def test_acquire_writes_the_record_with_if_none_match(new_lock, services, s3, clock):
    """acquire() puts ENV.lock with `If-None-Match: *`; the object is this run's record."""
    headers: list[dict[str, str]] = []
    services.s3._client.meta.events.register(
        "before-send.s3.PutObject", lambda request, **_: headers.append(dict(request.headers)))
    lock, rec = new_lock(), record(clock, "run-1")
    lock.acquire(rec)
    body, etag = stored(s3)
    assert [h.get("If-None-Match") for h in headers] == [b"*"]
    assert RunRecord.from_json(body) == rec
    assert lock.held and lock.etag == etag


def test_second_acquire_is_refused_naming_the_holder(new_lock, s3, clock):
    """A second Lock's acquire raises LockHeld naming the run that holds it; the lock is kept."""
    new_lock().acquire(record(clock, "run-first"))
    before = stored(s3)
    second = new_lock()
    with pytest.raises(LockHeld, match=r"s3://abfsm-locks/qa\.lock is held: run run-first by "):
        second.acquire(record(clock, "run-second"))
    assert not second.held
    assert stored(s3) == before


@pytest.mark.parametrize("racers", [2, 10])
def test_racing_acquirers_exactly_one_wins(new_lock, s3, clock, racers):
    """Threads released together by a barrier: exactly one acquires, the rest get LockHeld."""
    for round_ in range(3):
        winner = race_once(new_lock, lambda run_id: record(clock, run_id), racers,
                           f"r{round_}")
        holder = RunRecord.from_json(stored(s3)[0])
        assert holder is not None and holder.run_id == winner
        s3.delete_object(Bucket=BUCKET, Key=KEY)


def test_save_with_current_etag_updates_the_record(new_lock, s3, clock):
    """save() replaces the record under If-Match and tracks the new ETag."""
    lock, rec = new_lock(), record(clock)
    lock.acquire(rec)
    first_etag = lock.etag
    rec.state = "inspect"
    lock.save(rec)
    body, etag = stored(s3)
    saved = RunRecord.from_json(body)
    assert saved is not None and saved.state == "inspect"
    assert lock.etag == etag != first_etag


def test_save_after_the_lock_was_replaced_raises_lock_lost(new_lock, s3, clock):
    """A stale ETag (someone replaced the object) makes save() raise LockLost, touching nothing."""
    lock, rec = new_lock(), record(clock, "run-1")
    lock.acquire(rec)
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"frozen by ops")
    with pytest.raises(LockLost, match=r"qa\.lock was removed or replaced while run run-1 held"):
        lock.save(rec)
    assert not lock.held
    assert stored(s3)[0] == b"frozen by ops"


def test_save_after_the_lock_was_deleted_raises_lock_lost(new_lock, s3, clock):
    """A force-unlocked (deleted) lock makes the next save() raise LockLost and recreate nothing."""
    lock, rec = new_lock(), record(clock, "run-1")
    lock.acquire(rec)
    s3.delete_object(Bucket=BUCKET, Key=KEY)
    with pytest.raises(LockLost, match="removed or replaced while run run-1 held"):
        lock.save(rec)
    assert not lock.held
    assert not lock_exists(s3)


@pytest.mark.parametrize("body", [b"", b"frozen by ops"], ids=["empty", "text"])
def test_foreign_lock_is_reported_with_its_age(new_lock, s3, body):
    """holder() reports an object abfsm did not write as foreign, with its size and age."""
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=body)
    modified = s3.head_object(Bucket=BUCKET, Key=KEY)["LastModified"]
    later = FakeClock(start=modified + timedelta(seconds=90))
    holder = new_lock(lock_clock=later).holder()
    assert holder is not None and holder.record is None
    assert (holder.size, holder.age_s) == (len(body), 90.0)
    assert holder.describe(later) == (f"a lock abfsm did not write ({len(body)} bytes, 90 s old; "
                                      "a manual freeze?)")


@pytest.mark.parametrize("body", [b"", b"frozen by ops"], ids=["empty", "text"])
def test_acquire_leaves_a_foreign_lock_untouched(new_lock, s3, clock, body):
    """acquire() over a foreign lock raises LockHeld and leaves the object's bytes and ETag."""
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=body)
    before = stored(s3)
    lock = new_lock()
    with pytest.raises(LockHeld, match="a lock abfsm did not write"):
        lock.acquire(record(clock))
    assert not lock.held
    assert stored(s3) == before


def test_release_archives_the_record_and_deletes_the_lock(new_lock, s3, clock):
    """release() stores ENV/runs/<run_id>.json and removes ENV.lock."""
    lock, rec = new_lock(), record(clock, "run-1")
    lock.acquire(rec)
    rec.status = "done"
    lock.release(rec)
    archived = RunRecord.from_json(stored(s3, "qa/runs/run-1.json")[0])
    assert archived is not None and (archived.run_id, archived.status) == ("run-1", "done")
    assert not lock_exists(s3)
    assert not lock.held
    assert [h["run_id"] for h in lock.history()] == ["run-1"]


def test_release_keeps_a_lock_that_is_no_longer_ours(new_lock, s3, clock):
    """release() with a stale ETag raises LockLost and deletes nothing."""
    lock, rec = new_lock(), record(clock, "run-1")
    lock.acquire(rec)
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"frozen by ops")
    with pytest.raises(LockLost, match="no longer run run-1's; left it in place"):
        lock.release(rec)
    assert stored(s3)[0] == b"frozen by ops"
    assert not lock.held


def test_release_after_the_lock_was_deleted_raises_lock_lost(new_lock, s3, clock):
    """release() of a force-unlocked (deleted) lock raises LockLost but still archives the run."""
    lock, rec = new_lock(), record(clock, "run-1")
    lock.acquire(rec)
    s3.delete_object(Bucket=BUCKET, Key=KEY)
    with pytest.raises(LockLost, match="no longer run run-1's"):
        lock.release(rec)
    assert not lock_exists(s3) and not lock.held
    assert RunRecord.from_json(stored(s3, "qa/runs/run-1.json")[0]) == rec


def test_remove_with_the_holding_run_id_deletes_the_lock(new_lock, s3, clock):
    """remove(run_id=<holder>, force=False) deletes the lock and returns what it removed."""
    new_lock().acquire(record(clock, "run-1"))
    removed = new_lock().remove(run_id="run-1", force=False)
    assert removed.record is not None and removed.record.run_id == "run-1"
    assert not lock_exists(s3)


def test_remove_with_another_run_id_is_refused(new_lock, s3, clock):
    """remove(run_id=<not the holder>, force=False) is refused and removes nothing."""
    new_lock().acquire(record(clock, "run-1"))
    before = stored(s3)
    with pytest.raises(Refused, match="held by run run-1, not run-2; nothing removed"):
        new_lock().remove(run_id="run-2", force=False)
    assert stored(s3) == before


def test_remove_of_a_foreign_lock_needs_force(new_lock, s3):
    """A foreign lock is refused without force and removed with force=True."""
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"frozen by ops")
    with pytest.raises(Refused, match="only --force removes a lock abfsm did not write"):
        new_lock().remove(run_id=None, force=False)
    assert lock_exists(s3)
    removed = new_lock().remove(run_id=None, force=True)
    assert removed.record is None and removed.size == len(b"frozen by ops")
    assert not lock_exists(s3)


def test_remove_without_a_lock_is_refused(new_lock, s3):
    """remove() on a free environment is refused: there is nothing to remove."""
    with pytest.raises(Refused, match="no lock to remove; the environment is free"):
        new_lock().remove(run_id=None, force=True)


def test_read_only_lock_makes_no_write(new_lock, services, s3, clock, api_calls):
    """A read-only Lock checks the lock with reads only: no PutObject, no DeleteObject."""
    api_calls.watch(services.s3._client)
    lock, rec = new_lock(read_only=True), record(clock)
    lock.acquire(rec)
    lock.save(rec)
    lock.release(rec)
    assert api_calls.count("GetObject") == 1
    assert api_calls.count("PutObject") == api_calls.count("DeleteObject") == 0
    assert not lock_exists(s3)


def test_read_only_lock_reports_a_held_lock(new_lock, services, s3, clock, api_calls):
    """A read-only acquire over a held lock raises LockHeld without writing."""
    new_lock().acquire(record(clock, "run-1"))
    api_calls.watch(services.s3._client)
    with pytest.raises(LockHeld, match="held: run run-1"):
        new_lock(read_only=True).acquire(record(clock, "run-2"))
    assert api_calls.count("PutObject") == api_calls.count("DeleteObject") == 0


# --- a write whose answer was lost (the write landed; botocore's retry gets 412) ---------------

class LoseAnswer:
    """The first `count` successful PutObject answers with `header` are 'lost': botocore is told
    to retry (as it does after a 500 or a reset after the write), so the retry, a repeat of a
    write that already landed, loses its condition (412)."""

    def __init__(self, client: Any, header: str, count: int = 1) -> None:
        self.header, self.count = header, count
        self.lost = 0
        self.sent: list[bytes] = []
        client.meta.events.register_first("before-send.s3.PutObject", self._seen)
        client.meta.events.register_first("needs-retry.s3.PutObject", self._retry)

    def _seen(self, request: Any, **_: Any) -> None:
        self._pending = self.header in request.headers

    def _retry(self, response: Any, attempts: int, **_: Any) -> float | None:
        if self._pending and self.lost < self.count and response is not None \
                and response[0].status_code == 200:
            self.lost += 1
            return 0.0  # "retry now": the first answer never reached the caller
        return None


def test_acquire_whose_answer_was_lost_is_recognised_as_our_own(new_lock, services, s3, clock):
    """If-None-Match create lands, answer lost, retry gets 412: acquire holds the lock anyway."""
    lost = LoseAnswer(services.s3._client, "If-None-Match")
    lock, rec = new_lock(), record(clock, "run-1")
    lock.acquire(rec)
    body, etag = stored(s3)
    assert lost.lost == 1
    assert lock.held and lock.taken and lock.etag == etag
    assert RunRecord.from_json(body) == rec
    rec.state = "inspect"
    lock.save(rec)  # the ETag it carries on with is the real one
    assert RunRecord.from_json(stored(s3)[0]).state == "inspect"  # type: ignore[union-attr]


def test_heartbeat_whose_answer_was_lost_is_recognised_as_our_own(new_lock, services, s3, clock):
    """If-Match save lands, answer lost, retry gets 412: no LockLost, the new ETag is tracked."""
    lock, rec = new_lock(), record(clock, "run-1")
    lock.acquire(rec)
    lost = LoseAnswer(services.s3._client, "If-Match")
    rec.state = "wait-elb"
    lock.save(rec)
    body, etag = stored(s3)
    assert lost.lost == 1 and lock.etag == etag
    assert RunRecord.from_json(body) == rec and rec.write_seq == 2
    rec.state = "drain"
    lock.save(rec)
    assert RunRecord.from_json(stored(s3)[0]).state == "drain"  # type: ignore[union-attr]


def test_a_lost_answer_does_not_hide_a_real_replacement(new_lock, services, s3, clock):
    """412 on a save while someone else's record is in the lock: LockLost, theirs untouched."""
    lock, rec = new_lock(), record(clock, "run-1")
    lock.acquire(rec)
    other = record(clock, "run-1")  # same run id (another process resumed it), other body
    other.write_seq = 7
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=other.to_json())
    with pytest.raises(LockLost, match="removed or replaced while run run-1 held"):
        lock.save(rec)
    assert stored(s3)[0] == other.to_json() and not lock.held


def test_acquire_412_over_another_run_is_still_lock_held(new_lock, s3, clock):
    """An acquire that loses to another run's record is LockHeld naming that run."""
    new_lock().acquire(record(clock, "run-other"))
    with pytest.raises(LockHeld, match="held: run run-other"):
        new_lock().acquire(record(clock, "run-1"))


# --- release that cannot delete (e.g. DeleteObject denied) -------------------------------------

class Denying:
    """S3Objects whose chosen writes are denied (AccessDenied, as `call` reports it); counts them.

    (A botocore before-send answer would not do: in-process moto still performs the request.)
    """

    def __init__(self, objects: Any, *, delete: bool = False, archive: bool = False) -> None:
        self._objects, self._delete, self._archive = objects, delete, archive
        self.denied: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._objects, name)

    def delete(self, bucket: str, key: str, **kwargs: Any) -> None:
        if self._delete:
            self._deny("DeleteObject")
        self._objects.delete(bucket, key, **kwargs)

    def put(self, bucket: str, key: str, body: bytes, **kwargs: Any) -> str:
        if self._archive and "/runs/" in key:
            self._deny("PutObject")
        return str(self._objects.put(bucket, key, body, **kwargs))

    def _deny(self, action: str) -> None:
        self.denied.append(action)
        raise AwsError(f"s3 {action} failed: AccessDenied: Access Denied")


def test_release_whose_delete_is_denied_rewrites_the_lock_with_the_final_status(
        new_lock, services, s3, clock):
    """DeleteObject denied: the record is archived, the lock rewritten as done, ReleaseFailed."""
    denying = Denying(services.s3, delete=True)
    lock, rec = Lock(S3Store(denying, BUCKET, "qa"), clock), record(clock, "run-1")
    lock.acquire(rec)
    rec.state = rec.status = "done"
    with pytest.raises(ReleaseFailed) as err:
        lock.release(rec)
    assert str(err.value) == (
        "run run-1 finished with status done (state done), but the lock "
        "s3://abfsm-locks/qa.lock could not be released (s3 DeleteObject failed: AccessDenied: "
        "Access Denied); the lock now records status done")
    assert err.value.exit_code == 1
    in_lock = RunRecord.from_json(stored(s3)[0])
    assert in_lock is not None and (in_lock.status, in_lock.state) == ("done", "done")
    archived = RunRecord.from_json(stored(s3, "qa/runs/run-1.json")[0])
    assert archived is not None and archived.status == "done"
    assert lock.held and lock.etag == stored(s3)[1]


def test_release_whose_archive_is_denied_keeps_the_lock_with_the_final_status(
        services, s3, clock, api_calls):
    """The archive PutObject denied: no delete; the lock is rewritten as done; ReleaseFailed."""
    denying = Denying(services.s3, archive=True)
    lock, rec = Lock(S3Store(denying, BUCKET, "qa"), clock), record(clock, "run-1")
    lock.acquire(rec)
    api_calls.watch(services.s3._client)
    rec.state = rec.status = "done"
    with pytest.raises(ReleaseFailed, match=r"could not archive its final record \(s3 PutObject "
                                            r"failed: AccessDenied: Access Denied\), so the lock "
                                            r"was kept; the lock now records status done"):
        lock.release(rec)
    assert denying.denied == ["PutObject"] and api_calls.count("DeleteObject") == 0
    in_lock = RunRecord.from_json(stored(s3)[0])
    assert in_lock is not None and in_lock.status == "done"


# --- unlock: wins over a live heartbeat, keeps history -----------------------------------------

def test_unlock_force_wins_over_a_heartbeat_between_read_and_delete(new_lock, services, s3, clock):
    """A live run's heartbeat lands between unlock's read and its delete: unlock re-reads and
    retries; the lock is gone and the fenced run's next save raises LockLost."""
    running, rec = new_lock(), record(clock, "run-1")
    running.acquire(rec)
    deletes: list[str] = []

    def heartbeat_first(request: Any, **_: Any) -> None:
        deletes.append(request.headers.get("If-Match"))
        if len(deletes) == 1:
            running.save(rec)

    services.s3._client.meta.events.register_first("before-send.s3.DeleteObject",
                                                   heartbeat_first)
    removed = new_lock().remove(run_id=None, force=True)
    assert len(deletes) == 2 and deletes[0] != deletes[1]
    assert removed.record is not None and removed.record.write_seq == 2
    assert not lock_exists(s3)
    with pytest.raises(LockLost):
        running.save(rec)
    assert not lock_exists(s3)


def test_unlock_archives_the_run_as_unlocked(new_lock, s3, clock):
    """unlock --run-id stores qa/runs/<id>.json with status unlocked; history lists it."""
    new_lock().acquire(record(clock, "run-1"))
    new_lock().remove(run_id="run-1", force=False)
    archived = RunRecord.from_json(stored(s3, "qa/runs/run-1.json")[0])
    assert archived is not None and archived.status == "unlocked"
    assert archived.unlocked is not None and archived.unlocked["force"] is False
    assert archived.unlocked["status"] == "running"
    assert [(h["run_id"], h["status"]) for h in new_lock().history()] == [("run-1", "unlocked")]


# --- corrupt records ------------------------------------------------------------------------

@pytest.mark.parametrize("changes", [{"heartbeat": "soon"}, {"settings": "x"}, {"run_id": None}],
                         ids=["heartbeat", "settings", "run_id"])
def test_a_corrupt_lock_object_is_refused_like_a_foreign_one(new_lock, s3, clock, changes):
    """kind abfsm.run with wrong types in S3: LockHeld 'unreadable', the object untouched."""
    data = json.loads(record(clock, "run-1").to_json())
    data.update(changes)
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=json.dumps(data).encode())
    before = stored(s3)
    holder = new_lock().holder()
    assert holder is not None and holder.record is None and holder.problem
    with pytest.raises(LockHeld, match="unreadable abfsm lock record"):
        new_lock().acquire(record(clock, "run-2"))
    assert stored(s3) == before
