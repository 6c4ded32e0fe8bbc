"""One place that calls boto3 and turns its errors into the tool's."""

from __future__ import annotations

from typing import Any

from abfsm.clock import blocking_call
from abfsm.errors import AccessDenied, AwsError, Interrupted, PreconditionFailed


# Error codes that mean "a conditional write lost" rather than "AWS failed". An `If-Match`
# write to a key that is gone (a force-unlocked lock) is answered 404 NoSuchKey.
_CONDITION_CODES = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409",
                    "NoSuchKey", "404"}
# Error codes that mean "not allowed": raised as AccessDenied, naming the refused call.
_DENIED_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
                 "AuthorizationError", "Forbidden", "403"}


def _logger() -> Any:
    import structlog  # lazily: importing the adapters (abfsm graph) must stay cheap

    return structlog.get_logger("abfsm.aws")


def error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", "")) or None
    return None


def call(client: Any, service: str, action: str, *, mutating: bool = False,
         log_params: dict[str, Any] | None = None, conditional: bool = False,
         **params: Any) -> dict[str, Any]:
    """Call `client.<action>(**params)`; log mutating calls; translate errors.

    `conditional=True` turns a lost precondition into PreconditionFailed (for the lock).
    A stop request during the call (the signal handler raises KeyboardInterrupt inside it,
    in a request or in botocore's retry sleep) becomes Interrupted, never an AwsError.
    """
    log = _logger()
    if mutating:
        log.info("aws.call", service=service, action=action, params=log_params or {})
    else:  # --verbose shows reads too
        log.debug("aws.read", service=service, action=action,
                   params={k: v for k, v in params.items() if k != "Body"})
    method = getattr(client, _snake(action))
    try:
        with blocking_call():
            return method(**params)  # type: ignore[no-any-return]
    except KeyboardInterrupt as exc:
        raise Interrupted(str(exc) or "stopped by a signal") from None
    except Interrupted:
        raise
    except Exception as exc:
        code = error_code(exc)
        if code is None and not _is_botocore(exc):
            raise
        if conditional and code in _CONDITION_CODES:
            raise PreconditionFailed(code) from None
        message = _message(exc)
        if code in _DENIED_CODES:
            raise AccessDenied(f"{service} {action} failed: {code}: {message}", service=service,
                               api=action, params={k: v for k, v in params.items()
                                                   if k != "Body"}) from exc
        raise AwsError(f"{service} {action} failed: {code or type(exc).__name__}: {message}") from exc


def _is_botocore(exc: BaseException) -> bool:
    return type(exc).__module__.startswith(("botocore", "urllib3"))


def _message(exc: BaseException) -> str:
    """The whole message on one line (a ParamValidationError lists its problems on the lines
    after "Parameter validation failed:")."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        msg = response.get("Error", {}).get("Message")
        if msg:
            return _one_line(str(msg))
    return _one_line(str(exc)) or type(exc).__name__


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _snake(action: str) -> str:
    out = []
    for i, ch in enumerate(action):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)
