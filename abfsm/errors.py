"""The tool's errors. Each carries the exit code the CLI turns it into."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_PAUSED = 4  # stopped at a checkpoint (an approval with --pause-at-approval); resumable
EXIT_INTERRUPTED = 130


class AbfsmError(Exception):
    """Base class: a one-line message and an exit code."""

    exit_code = EXIT_FAILED


class UsageError(AbfsmError):
    """Bad flags or arguments; raised before any AWS call."""

    exit_code = EXIT_USAGE


class SpecError(UsageError):
    """states.yaml is malformed; raised before any AWS call."""

    def __init__(self, path: str, key: str, problem: str) -> None:
        self.path, self.key, self.problem = path, key, problem
        super().__init__(f"{path}: {key}: {problem}")


class Refused(AbfsmError):
    """A precondition refused the run (locked, both ASGs populated, resume not allowed)."""

    exit_code = EXIT_REFUSED


class LockHeld(Refused):
    """Another run (or a manual freeze) holds the environment lock.

    `foreign`: what holds it is not a readable abfsm record (a manual freeze, or a corrupt
    record): only `abfsm unlock --force` lifts it.
    """

    def __init__(self, message: str, *, foreign: bool = False) -> None:
        self.foreign = foreign
        super().__init__(message)


class LockLost(Refused):
    """This run's lock was removed or replaced under it (force-unlocked)."""


class ReleaseFailed(AbfsmError):
    """The deployment reached its final state but its lock could not be released (e.g. the
    DeleteObject was denied). The message says the final status; exit 1."""

    def __init__(self, message: str, *, status: str = "") -> None:
        self.status = status  # the deployment's own final status (done, rolled-back, ...)
        super().__init__(message)


class StateFailed(AbfsmError):
    """A state's action failed: an AWS error or an unexpected answer."""


class WaitTimeout(StateFailed):
    """A wait ran out of time."""


class AlarmFired(StateFailed):
    """A watched CloudWatch alarm went into ALARM during a wait."""


class AwsError(StateFailed):
    """An AWS API call failed after boto3's retries."""


class AccessDenied(AwsError):
    """AWS refused a call for lack of permission (AccessDenied, UnauthorizedOperation, ...).

    Carries the call that was refused, so the CLI can name the IAM action and resource and
    the `abfsm iam-policy` command that prints what is needed.
    """

    def __init__(self, message: str, *, service: str, api: str,
                 params: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.service, self.api, self.params = service, api, dict(params or {})


class Interrupted(AbfsmError):
    """SIGINT/SIGTERM: the run stopped between polls; its record is saved."""

    exit_code = EXIT_INTERRUPTED


class PreconditionFailed(Exception):
    """A conditional write lost (S3 412 / local compare-and-swap). Internal to the lock."""
