"""``crackseg model rollback [--to N]``: move ``champion`` back and roll the predictor onto that version.

Without ``--to`` the target is the current champion's ``parent_version`` tag (the model it replaced). The target
is exported (verified) first, then the predictor rolls, and the alias moves only once the predictor confirms it
serves the target (as in a retraining run); a failed rollout leaves the alias where it was. The version rolled
away from is tagged ``status=rolled-back``.
"""

from __future__ import annotations

from pydantic import BaseModel

from ml.registry import Registry
from services.common.feedback import FeedbackStore, RetrainOutcome
from services.retrain import events
from services.retrain.errors import RegistryError, RolloutError
from services.retrain.modelstore import export_version
from services.retrain.rollout import Rollout
from services.retrain.settings import RolloutSettings


class RollbackResult(BaseModel):
    previous: str
    current: str
    served: str | None


def pick_target(registry: Registry, current: str, to: str | None) -> str:
    if to is not None:
        if not to.isdigit():
            raise ValueError(f"--to must be a version number such as 3, got {to!r}")
        registry.get(to)  # raises RegistryError naming the missing version
        if to == current:
            raise ValueError(f"version {to} is already the champion")
        return to
    parent = registry.get(current).tags.get("parent_version")
    if not parent or parent == "none":
        raise RegistryError(f"champion version {current} has no parent_version tag: name one with --to N")
    return parent


def rollback(
    settings: RolloutSettings, registry: Registry, rollout: Rollout | None, to: str | None = None
) -> RollbackResult:
    champion = registry.champion()
    if champion is None:
        raise RegistryError(f"model {registry.name} has no champion alias: nothing to roll back")
    target = pick_target(registry, champion.version, to)
    exported = export_version(registry, target, settings.models_dir)
    served = None
    if rollout is not None:
        rollout.roll(target, exported)  # reverts its own change on failure; the alias has not moved
        served = rollout.current()
        if served != target:
            raise RolloutError(f"predictor serves {served}, not {target}: alias left on {champion.version}")
    registry.set_champion(target)
    registry.set_tags(
        champion.version, {"status": "rolled-back", "rejection_reason": f"rolled back to {target}"}
    )
    registry.set_tags(target, {"status": "promoted"})
    FeedbackStore(settings.feedback_dir).record_retrain(
        RetrainOutcome(
            run=f"rollback-v{champion.version}-to-v{target}",
            outcome="rolled_back",
            model_version=target,
            reason=f"rolled back from {champion.version}",
        )
    )
    events.emit("rolled_back", previous=champion.version, current=target, served=served)
    return RollbackResult(previous=champion.version, current=target, served=served)
