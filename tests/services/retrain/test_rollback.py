"""``crackseg model rollback`` and the rollout-failure path against a real MLflow registry and a fake Kubernetes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ml.registry import Registry
from services.common.feedback import FeedbackStore
from services.retrain.errors import RegistryError, RolloutTimeoutError
from services.retrain.modelstore import verify_export
from services.retrain.rollback import rollback
from services.retrain.rollout import DeploymentRollout
from services.retrain.settings import RolloutSettings
from tests.services.retrain.conftest import Champion
from tests.services.retrain.fakekube import FakeKube, complete_rollout, deployment, stuck_rollout

pytestmark = pytest.mark.integration


@pytest.fixture
def promoted_child(champion: Champion) -> Iterator[tuple[Registry, str, str]]:
    """A second version (same weights) promoted over the current champion, with its parent_version tag."""
    registry = Registry(champion.tracking_uri)
    parent = registry.champion()
    assert parent is not None and parent.run_id is not None
    child = registry.register(parent.run_id, {"parent_version": parent.version, "status": "promoted"})
    registry.set_champion(child.version)
    yield registry, parent.version, child.version
    registry.set_champion(parent.version)


def settings(tmp_path: Path) -> RolloutSettings:
    return RolloutSettings(
        feedback_dir=tmp_path / "feedback", models_dir=tmp_path / "models", rollout="deployment"
    )


def test_rollback_to_the_parent_patches_the_deployment(
    promoted_child: tuple[Registry, str, str], tmp_path: Path
) -> None:
    registry, parent, child = promoted_child
    kube = FakeKube()
    kube.deployments["crackseg-predictor"] = deployment(version=child)
    kube.on_get_deployment = complete_rollout
    result = rollback(
        settings(tmp_path), registry, DeploymentRollout(kube, "crackseg-predictor", poll_s=0.01)
    )
    assert (result.previous, result.current, result.served) == (child, parent, parent)
    assert registry.champion().version == parent  # type: ignore[union-attr]
    assert registry.get(child).tags["status"] == "rolled-back"
    assert verify_export(tmp_path / "models" / f"v{parent}")
    patch = kube.calls[0][2]["spec"]["template"]
    assert patch["spec"]["containers"][0]["env"] == [
        {"name": "CRACKSEG_MODEL_VERSION", "value": parent},
        {"name": "CRACKSEG_MODEL_SOURCE", "value": str(tmp_path / "models" / f"v{parent}")},
    ]
    outcome = FeedbackStore(tmp_path / "feedback").retrain_runs()[-1]
    assert (outcome.outcome, outcome.model_version) == ("rolled_back", parent)


class AliasSpy(Registry):
    """The real registry, recording every alias move."""

    moves: list[str | None]

    def set_champion(self, version: str | None) -> None:
        self.moves.append(version)
        super().set_champion(version)


def test_failed_rollout_during_rollback_never_moves_the_alias(
    promoted_child: tuple[Registry, str, str], tmp_path: Path
) -> None:
    shared, parent, child = promoted_child
    registry = AliasSpy(shared.uri)
    registry.moves = []
    kube = FakeKube()
    kube.deployments["crackseg-predictor"] = deployment(version=child)
    kube.on_get_deployment = stuck_rollout
    rollout = DeploymentRollout(kube, "crackseg-predictor", timeout_s=0.1, poll_s=0.01)
    with pytest.raises(RolloutTimeoutError, match="patch reverted"):
        rollback(settings(tmp_path), registry, rollout, to=parent)
    assert registry.champion().version == child  # type: ignore[union-attr]
    assert registry.moves == []  # the registry never named a version the predictor did not serve
    assert registry.get(child).tags["status"] == "promoted"
    assert [c[0] for c in kube.calls] == ["patch_deployment", "patch_deployment"]


def test_rollback_to_unknown_or_current_version_is_refused(
    promoted_child: tuple[Registry, str, str], tmp_path: Path
) -> None:
    registry, _, child = promoted_child
    with pytest.raises(RegistryError, match="get version 9999"):
        rollback(settings(tmp_path), registry, None, to="9999")
    with pytest.raises(ValueError, match="already the champion"):
        rollback(settings(tmp_path), registry, None, to=child)
    with pytest.raises(ValueError, match="version number"):
        rollback(settings(tmp_path), registry, None, to="v1")
