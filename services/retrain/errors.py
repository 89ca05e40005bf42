"""Domain errors of the retraining loop. Each names the object it is about; the CLI maps them to exit codes."""

from __future__ import annotations

from ml.registry import RegistryError

__all__ = ["RegistryError"]  # the registry client's error, raised by every registry call (exit 1)


class RetrainError(Exception):
    """Base class: something in the retraining loop failed; the message says what and where."""

    exit_code = 1


class ConfigError(RetrainError, ValueError):
    """A setting, template or argument is invalid (exit 2)."""

    exit_code = 2


class AlreadyRunningError(RetrainError):
    """Another retraining run holds the lock (exit 3)."""

    exit_code = 3


class GaveUpError(RetrainError):
    """The run spent its attempts; new feedback or ``crackseg retrain retry`` starts it again (exit 4)."""

    exit_code = 4


class KubeError(RetrainError):
    """A Kubernetes API call failed; the message names kind, namespace/name and the HTTP status."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KubeNotFoundError(KubeError):
    """The object does not exist (HTTP 404)."""


class KubeConflictError(KubeError):
    """The object already exists or changed underneath us (HTTP 409)."""


class RolloutError(RetrainError):
    """The predictor did not come up on the new model (it was reverted where possible)."""


class RolloutTimeoutError(RolloutError):
    """The rollout did not finish within the configured time."""


class ExportError(RetrainError):
    """The exported weights do not match their checksum or could not be written."""


class InjectedCrash(BaseException):
    """Raised by the failure-injection hook (``CRACKSEG_RETRAIN_FAIL_AT=<step>``) to simulate a crash.

    A ``BaseException`` on purpose: like ``kill -9``, it must bypass every ``except Exception`` clean-up, so tests
    see exactly the state a crash would leave.
    """
