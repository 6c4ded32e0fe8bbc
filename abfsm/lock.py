"""The environment lock, which is also where the current run record lives.

Two stores with one contract: an S3 object `ENV.lock` in the lock bucket (conditional writes:
`If-None-Match: *` to take it, `If-Match: <etag>` to update or release it) or a file in the
local state dir (link-to-create, compare-and-swap under flock, write-fsync-rename).
`Lock` puts the run-record semantics on top: acquire, save, release, take over for resume.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from abfsm.clock import Clock, utc_iso
from abfsm.errors import (AbfsmError, Interrupted, LockHeld, LockLost, PreconditionFailed, Refused,
                          ReleaseFailed)
from abfsm.record import UNLOCKED, RunRecord, parse, started_by


@dataclass(frozen=True)
class Stored:
    body: bytes
    etag: str
    modified: datetime


class ObjectStore(Protocol):
    """The S3 calls the lock needs (implemented by abfsm.aws.s3.S3Objects)."""

    def get(self, bucket: str, key: str) -> Stored | None: ...
    def put(self, bucket: str, key: str, body: bytes, *, if_none_match: bool = False,
            if_match: str | None = None) -> str: ...
    def delete(self, bucket: str, key: str, *, if_match: str | None = None) -> None: ...
    def list_keys(self, bucket: str, prefix: str) -> list[str]: ...


class Store(Protocol):
    where: str

    def read(self) -> Stored | None: ...
    def create(self, body: bytes) -> str: ...
    def replace(self, body: bytes, etag: str) -> str: ...
    def delete(self, etag: str | None) -> None: ...
    def put_run(self, run_id: str, body: bytes) -> None: ...
    def runs(self, limit: int) -> list[bytes]: ...
    def get_doc(self, name: str) -> Stored | None: ...
    def put_doc(self, name: str, body: bytes, *, etag: str | None = None) -> str: ...


class S3Store:
    def __init__(self, s3: ObjectStore, bucket: str, environment: str) -> None:
        self._s3, self._bucket, self._env = s3, bucket, environment
        self.key = f"{environment}.lock"
        self.where = f"s3://{bucket}/{self.key}"

    def read(self) -> Stored | None:
        return self._s3.get(self._bucket, self.key)

    def create(self, body: bytes) -> str:
        return self._s3.put(self._bucket, self.key, body, if_none_match=True)

    def replace(self, body: bytes, etag: str) -> str:
        return self._s3.put(self._bucket, self.key, body, if_match=etag)

    def delete(self, etag: str | None) -> None:
        self._s3.delete(self._bucket, self.key, if_match=etag)

    def put_run(self, run_id: str, body: bytes) -> None:
        self._s3.put(self._bucket, f"{self._env}/runs/{run_id}.json", body)

    # Side documents of a run (e.g. `approvals/<run_id>-<state>.json`), next to its record.
    def get_doc(self, name: str) -> Stored | None:
        return self._s3.get(self._bucket, f"{self._env}/{name}")

    def put_doc(self, name: str, body: bytes, *, etag: str | None = None) -> str:
        """Create (etag None: only if absent) or replace (only if still `etag`)."""
        key = f"{self._env}/{name}"
        if etag is None:
            return self._s3.put(self._bucket, key, body, if_none_match=True)
        return self._s3.put(self._bucket, key, body, if_match=etag)

    def runs(self, limit: int) -> list[bytes]:
        keys = sorted(self._s3.list_keys(self._bucket, f"{self._env}/runs/"), reverse=True)
        out = []
        for key in keys[:limit]:
            got = self._s3.get(self._bucket, key)
            if got:
                out.append(got.body)
        return out


class LocalStore:
    """The same contract on one machine: files under the state dir."""

    def __init__(self, state_dir: str | Path, environment: str) -> None:
        self._dir = Path(state_dir)
        self._env = environment
        self.path = self._dir / f"{environment}.lock"
        self.where = str(self.path)

    def read(self) -> Stored | None:
        try:
            body = self.path.read_bytes()
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return None
        return Stored(body, _etag(body), datetime.fromtimestamp(mtime, timezone.utc))

    def create(self, body: bytes) -> str:
        self._dir.mkdir(parents=True, exist_ok=True)
        tmp = self._write_temp(body)
        try:
            os.link(tmp, self.path)  # atomic: fails if the lock exists
        except FileExistsError:
            raise PreconditionFailed(self.where) from None
        finally:
            os.unlink(tmp)
        return _etag(body)

    def replace(self, body: bytes, etag: str) -> str:
        with self._guard():
            current = self.read()
            if current is None or current.etag != etag:
                raise PreconditionFailed(self.where)
            os.replace(self._write_temp(body), self.path)
            _fsync_dir(self._dir)
        return _etag(body)

    def delete(self, etag: str | None) -> None:
        with self._guard():
            current = self.read()
            if current is None:
                return
            if etag is not None and current.etag != etag:
                raise PreconditionFailed(self.where)
            self.path.unlink()

    def put_run(self, run_id: str, body: bytes) -> None:
        runs = self._dir / self._env / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        os.replace(self._write_temp(body), runs / f"{run_id}.json")

    def get_doc(self, name: str) -> Stored | None:
        path = self._dir / self._env / name
        try:
            body = path.read_bytes()
        except FileNotFoundError:
            return None
        return Stored(body, _etag(body), datetime.fromtimestamp(path.stat().st_mtime, timezone.utc))

    def put_doc(self, name: str, body: bytes, *, etag: str | None = None) -> str:
        """Create (etag None: only if absent) or replace (only if still `etag`)."""
        path = self._dir / self._env / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._guard():
            current = self.get_doc(name)
            if (current is not None) if etag is None else (current is None or current.etag != etag):
                raise PreconditionFailed(str(path))
            os.replace(self._write_temp(body), path)
        return _etag(body)

    def runs(self, limit: int) -> list[bytes]:
        runs = self._dir / self._env / "runs"
        if not runs.is_dir():
            return []
        return [p.read_bytes() for p in sorted(runs.glob("*.json"), reverse=True)[:limit]]

    def _write_temp(self, body: bytes) -> str:
        self._dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._dir, prefix=f".{self._env}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        return tmp

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        self._dir.mkdir(parents=True, exist_ok=True)
        with open(self._dir / f".{self._env}.guard", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


# A live run refreshes its record at least once per poll interval (--update-timeout) while it
# waits; one whose heartbeat is older than this many intervals is taken to be gone.
STALE_AFTER_POLLS = 3


def stale_after_s(record: RunRecord) -> float:
    """Seconds after which `record`'s heartbeat is stale (resume may take the run over)."""
    return STALE_AFTER_POLLS * float(record.settings.get("update_timeout", 30.0))


# `abfsm unlock` re-reads and retries its conditional delete this many times when a live
# run's heartbeat lands between its read and its delete.
UNLOCK_ATTEMPTS = 5


@dataclass(frozen=True)
class Holder:
    """What holds the lock now: an abfsm run record, or something abfsm did not write.

    `problem` is set when the object claims to be an abfsm record but breaks the schema
    (e.g. its heartbeat is not a timestamp): it is treated as a lock abfsm did not write.
    """

    record: RunRecord | None
    etag: str
    age_s: float
    size: int
    problem: str = ""

    def describe(self, clock: Clock) -> str:
        if self.record is None:
            if self.problem:
                return (f"an unreadable abfsm lock record ({self.problem}; {self.size} bytes, "
                        f"{self.age_s:.0f} s old)")
            return (f"a lock abfsm did not write ({self.size} bytes, {self.age_s:.0f} s old; "
                    "a manual freeze?)")
        r = self.record
        return (f"run {r.run_id} by {r.who}, status {r.status} in state {r.failed_state or r.state}, "
                f"heartbeat {r.heartbeat_age(clock):.0f} s ago")


class Lock:
    """The lock of one environment, holding this run's record once acquired.

    A conditional write that loses (S3 412, or NoSuchKey on If-Match) is not yet a lost lock:
    on S3 a write can succeed while its answer is lost (a 500 or a reset after the write),
    and botocore's retry of it then loses against the write itself. So the lock re-reads the
    object, and a body that is exactly the one this run sent (run_id and write_seq included)
    is this run's own write: it carries on with that ETag. Anything else is someone else's.
    """

    def __init__(self, store: Store, clock: Clock, *, read_only: bool = False) -> None:
        self.store = store
        self.clock = clock
        self.read_only = read_only
        self.etag: str | None = None  # set while this run holds the lock
        self.taken = False  # this run held the lock at some point

    @property
    def where(self) -> str:
        return self.store.where

    @property
    def held(self) -> bool:
        return self.etag is not None

    def holder(self) -> Holder | None:
        return self._holder(self.store.read())

    def _holder(self, got: Stored | None) -> Holder | None:
        if got is None:
            return None
        age = max(0.0, (self.clock.now() - got.modified).total_seconds())
        record, problem = parse(got.body)
        return Holder(record, got.etag, age, len(got.body), problem)

    def check_free(self) -> None:
        """Raise LockHeld if anything holds the lock (dry-run's read-only check)."""
        holder = self.holder()
        if holder is not None:
            raise LockHeld(f"{self.where} is held: {holder.describe(self.clock)}",
                           foreign=holder.record is None)

    def acquire(self, record: RunRecord) -> None:
        if self.read_only:
            self.check_free()
            return
        body = self._next_body(record)
        try:
            self.etag = self.store.create(body)
        except PreconditionFailed:
            got = self.store.read()
            if got is None or got.body != body:
                holder = self._holder(got)
                what = holder.describe(self.clock) if holder else "a lock that has just gone"
                raise LockHeld(f"{self.where} is held: {what}",
                               foreign=holder is not None and holder.record is None) from None
            self.etag = got.etag  # our own create, whose answer was lost
        self.taken = True

    def take_over(self, holder: Holder) -> None:
        """Resume: continue under the lock a previous process of this run holds."""
        self.etag = holder.etag
        self.taken = True

    def save(self, record: RunRecord) -> None:
        if self.read_only or not self.held:
            return
        body = self._next_body(record)
        try:
            self.etag = self.store.replace(body, self.etag)  # type: ignore[arg-type]
        except PreconditionFailed:
            etag = self._own_write(body)
            if etag is None:
                self.etag = None
                raise LockLost(
                    f"the lock {self.where} was removed or replaced while run {record.run_id} "
                    "held it (force-unlocked?); stopped without touching AWS further") from None
            self.etag = etag

    def release(self, record: RunRecord) -> None:
        """Archive the final record, then remove the lock if it is still this run's.

        If the archive or the delete fails (e.g. AccessDenied), the lock object is rewritten
        with the final record where the store allows it (so it never says `running` after
        the process ended) and ReleaseFailed says so; the lock stays held.
        """
        if self.read_only or not self.held:
            return
        record.touch(self.clock)
        try:
            self.store.put_run(record.run_id, record.to_json())
        except Interrupted:
            raise
        except (AbfsmError, OSError) as exc:
            self._keep_final(record, f"could not archive its final record ({exc}), so the "
                                     "lock was kept", exc)
        try:
            self.store.delete(self.etag)
        except PreconditionFailed:
            self.etag = None
            raise LockLost(f"the lock {self.where} is no longer run {record.run_id}'s; "
                           "left it in place") from None
        except Interrupted:
            raise
        except (AbfsmError, OSError) as exc:
            self._keep_final(record, f"could not be released ({exc})", exc)
        self.etag = None

    def _keep_final(self, record: RunRecord, why: str, cause: BaseException) -> None:
        """Rewrite the lock with the final record (best effort), then raise ReleaseFailed."""
        try:
            self.save(record)
            kept = f"the lock now records status {record.status}"
        except Interrupted:
            raise
        except (AbfsmError, OSError) as exc:
            kept = f"rewriting it with the final status failed too ({exc})"
        raise ReleaseFailed(f"run {record.run_id} finished with status {record.status} "
                            f"(state {record.state}), but the lock {self.where} {why}; {kept}",
                            status=record.status) from cause

    def remove(self, *, run_id: str | None, force: bool,
               attempts: int = UNLOCK_ATTEMPTS) -> Holder:
        """`abfsm unlock`: remove the lock deliberately; returns what was removed.

        The delete is conditional on the ETag just read; if a live run's heartbeat lands in
        between, read again and retry (that run stops at its next write: LockLost). The
        removed run's record is archived under ENV/runs/ with status `unlocked`.
        """
        for attempt in range(attempts):
            holder = self.holder()
            if holder is None:
                if attempt == 0:
                    raise Refused(f"{self.where}: no lock to remove; the environment is free")
                raise Refused(f"{self.where} went away while unlocking (its run released "
                              "it?); the environment is free, nothing removed")
            if not force:
                if holder.record is None:
                    raise Refused(f"{self.where} is {holder.describe(self.clock)}; "
                                  "only --force removes a lock abfsm did not write")
                if holder.record.run_id != run_id:
                    raise Refused(f"{self.where} is held by run {holder.record.run_id}, "
                                  f"not {run_id}; nothing removed")
            try:
                self.store.delete(holder.etag)
            except PreconditionFailed:
                continue  # changed between the read and the delete: read it again
            if holder.record is not None:
                self._archive_unlocked(holder.record, force=force)
            return holder
        raise Refused(f"{self.where} changed {attempts} times while unlocking (a live run's "
                      "heartbeat?); nothing removed, try again")

    def _archive_unlocked(self, removed: RunRecord, *, force: bool) -> None:
        record = copy.deepcopy(removed)  # the Holder returned still describes what was removed
        now = utc_iso(self.clock.now())
        record.unlocked = {"by": started_by(), "at": now, "force": force,
                           "status": record.status, "state": record.failed_state or record.state}
        record.status, record.finished_at = UNLOCKED, now
        try:
            self.store.put_run(record.run_id, record.to_json())
        except Interrupted:
            raise
        except (AbfsmError, OSError) as exc:
            raise AbfsmError(f"removed {self.where}, but archiving run {record.run_id}'s "
                             f"record as unlocked failed: {exc}") from None

    def history(self, limit: int = 5) -> list[dict[str, Any]]:
        """The archived records of recent runs, newest first (unreadable ones left out)."""
        out = []
        for body in self.store.runs(limit):
            record = RunRecord.from_json(body)
            if record is not None:
                out.append(asdict(record))
        return out

    def _next_body(self, record: RunRecord) -> bytes:
        record.touch(self.clock)
        record.write_seq += 1
        return record.to_json()

    def _own_write(self, body: bytes) -> str | None:
        """After a lost condition: the ETag of the lock if it holds exactly `body`, else None."""
        got = self.store.read()
        return got.etag if got is not None and got.body == body else None


def _etag(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
