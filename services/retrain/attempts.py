"""How a run tries: the retry policy (bounded by the journal's attempt budget) and the failure-injection hook."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence

import tenacity

from services.retrain import events
from services.retrain.errors import ConfigError, InjectedCrash
from services.retrain.journal import RunJournal


def retrying(
    journal: RunJournal, wait_s: float, wait_max_s: float, sleep: Callable[[float], None]
) -> tenacity.Retrying:
    """Retry what may pass next time (not a ConfigError, not a crash) until the attempt budget is spent.

    The budget lives in the journal, so tries in earlier processes (a crash, a restarted pod) count too. Waits
    ``wait_s * 2**(n-1)`` before the n-th retry, at most ``wait_max_s``.
    """

    def budget_spent(_: tenacity.RetryCallState) -> bool:
        return journal.attempts >= journal.attempt_budget

    def before_sleep(state: tenacity.RetryCallState) -> None:
        assert state.next_action is not None
        events.emit(
            "run_retry", run=journal.run_name, attempt=journal.attempts, wait_s=state.next_action.sleep
        )

    return tenacity.Retrying(
        stop=budget_spent,
        wait=tenacity.wait_exponential(multiplier=wait_s, min=wait_s, max=wait_max_s),
        retry=tenacity.retry_if_exception(
            lambda e: isinstance(e, Exception) and not isinstance(e, ConfigError)
        ),
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )


def inject(fail_at: str | None, step: str, steps: Sequence[str]) -> None:
    """The failure-injection hook (``CRACKSEG_RETRAIN_FAIL_AT=<step>[:kill]``): after ``step``'s side effects,
    before the journal records it — the worst moment for a crash."""
    if not fail_at:
        return
    wanted, _, mode = fail_at.partition(":")
    if wanted not in steps:
        raise ConfigError(f"CRACKSEG_RETRAIN_FAIL_AT step {wanted!r} unknown; valid: {', '.join(steps)}")
    if wanted != step:
        return
    events.emit("injected_failure", step=step, mode=mode or "raise")
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise InjectedCrash(f"injected crash after step {step}")
