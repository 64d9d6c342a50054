"""The exception tree.

``PrefectLiteError`` is the root of every error we raise on purpose. ``UserError``s are
problems with input that a CLI prints as one line. Control signals that must cross user
``except Exception`` blocks (pause, cancel, abort) derive from ``BaseException``.
"""

from __future__ import annotations

from typing import Any


class PrefectLiteError(Exception):
    """Root of all prefect_lite errors."""


class UserError(PrefectLiteError):
    """Bad input or configuration: shown to CLI users as one clear line."""


class ConfigurationError(UserError):
    """Settings are invalid or a needed component is missing."""


class StoreUnavailable(UserError):
    """Redis cannot be reached."""


class ObjectNotFound(UserError):
    """A named or identified object does not exist."""

    def __init__(self, message: str = "object not found", *, detail: Any = None) -> None:
        super().__init__(message)
        self.detail = detail if detail is not None else message


class ObjectAlreadyExists(UserError):
    """Creating something that already exists without ``overwrite``."""


class PayloadTooLarge(UserError):
    """A parameter, result or input is larger than ``max_payload_bytes``."""


class TooManyRequests(UserError):
    """The server is at a limit (e.g. waits in progress): retry shortly (HTTP 429)."""


class ValidationError(UserError):
    """Input that does not fit its schema."""


class ParameterTypeError(ValidationError):
    """Flow/task parameters that do not fit the function signature."""


class SignatureMismatchError(ParameterTypeError):
    """Parameters that the function signature does not accept at all."""


class ParameterBindError(SignatureMismatchError, TypeError):
    """Call arguments that cannot be bound to the flow/task signature."""


class DefinitionError(UserError, ValueError):
    """A flow or task declared with invalid options (raised at decoration time)."""


class NotCallableError(DefinitionError, TypeError):
    """``@flow``/``@task`` applied to something that is not callable."""


class EntrypointError(UserError):
    """A flow entrypoint (``path/file.py:func`` or ``module:func``) could not be loaded."""


class MissingFlowError(EntrypointError):
    """The entrypoint's file, module or attribute does not exist."""


class ScriptError(EntrypointError):
    """The entrypoint's file or module raised while being imported."""


class NotAFlowError(EntrypointError, TypeError):
    """The entrypoint names an object that is not a flow."""


class PullStepError(UserError):
    """A deployment's pull step (e.g. git clone) failed or is malformed."""


class CodeRefused(PullStepError):
    """A worker refused a deployment's code or pull step: its operator did not allow it."""


class AuthenticationError(UserError):
    """Missing or wrong API key."""


class PermissionDenied(AuthenticationError):
    """A valid API key whose role does not allow the operation (HTTP 403)."""


class UnserializableValue(ValidationError, TypeError):
    """A value that cannot be stored as JSON (e.g. an integer beyond 64 bits)."""


class MissingContextError(PrefectLiteError, RuntimeError):
    """A run-scoped API was used outside of a flow or task run."""


class StaleProposal(PrefectLiteError):
    """A state proposal carried an old version or lease and was rejected."""


class MissingResult(PrefectLiteError):
    """A state has no result data to return."""


class ResultSignatureError(UserError):
    """A pickled result or cache record is unsigned or not signed with this process's
    result-signing key, so it was not unpickled (it may come from an attacker)."""


class UnfinishedRun(PrefectLiteError):
    """The result of a run that has not finished was requested."""


class UpstreamTaskError(PrefectLiteError):
    """A task did not run because an upstream task failed."""


class MappingLengthMismatch(PrefectLiteError, ValueError):
    """``Task.map`` got iterables of different lengths."""


class MappingMissingIterable(PrefectLiteError, ValueError):
    """``Task.map`` got no iterable argument to map over."""


class TaskRunTimeoutError(PrefectLiteError, TimeoutError):
    """A task run exceeded its ``timeout_seconds``."""


class FlowRunTimeoutError(PrefectLiteError, TimeoutError):
    """A flow run exceeded its ``timeout_seconds``."""


class CrashedRun(PrefectLiteError):
    """The run's process ended without reporting a final state."""


class FailedRun(PrefectLiteError):
    """A run ended FAILED without an exception object to re-raise."""


class CancelledRun(PrefectLiteError):
    """The run was cancelled."""


class PausedRun(PrefectLiteError):
    """The run is paused and has no result yet."""


class NotPausedError(UserError):
    """Resuming a flow run that is not paused."""


class FlowPauseTimeout(UserError, TimeoutError):
    """A paused flow run was not resumed before its pause timed out."""


class TerminationSignal(BaseException):
    """Raised inside a run to stop it (cancellation, abort); escapes ``except Exception``."""


class Abort(TerminationSignal):
    """The orchestrator told this run to stop (e.g. its state was rejected)."""


class Pause(TerminationSignal):
    """The run is suspended; its process should exit and free its slot."""

    def __init__(self, message: str = "the flow run is suspended", state: Any = None) -> None:
        super().__init__(message)
        self.state = state  # the Suspended state the orchestrator accepted


def one_line_when_uncaught(exc: BaseException) -> BaseException:
    """Mark ``exc`` so that, if nothing catches it, Python prints ``prefect_lite: <message>``
    (one line, exit status 1) instead of a traceback. For setup failures a script cannot fix
    in code (no redis-server binary, the embedded Redis refusing to start): the message says
    what to do, a traceback through the SDK only hides it. Still an ordinary exception to
    any caller that catches it."""
    import sys

    exc.__dict__["_prefect_lite_one_line"] = True
    previous = sys.excepthook
    if not getattr(previous, "_prefect_lite_one_line", False):

        def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
            if getattr(value, "_prefect_lite_one_line", False):
                print(f"prefect_lite: {value}", file=sys.stderr)
                return
            previous(kind, value, tb)

        hook._prefect_lite_one_line = True  # type: ignore[attr-defined]
        sys.excepthook = hook
    return exc
