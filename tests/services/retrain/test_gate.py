"""The promotion gate's two conditions, the held-back feedback slice, and what the gate puts on the version."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ml.checkpoint import ModelConfig, build_model, read_config, save_model
from services.retrain.promote import gate
from services.retrain.recipe import decide, layout_split, metric_tags, split_feedback, train_challenger
from services.retrain.settings import RunSettings

M = "f1_at_threshold"


def test_learned_the_domain_and_kept_the_base_is_promoted() -> None:
    decision = gate(M, base=(0.80, 0.805), feedback=(0.55, 0.30))
    assert decision.promote
    assert [c.name for c in decision.checks] == ["feedback", "base"]
    assert all(c.passed for c in decision.checks)


def test_learned_the_domain_but_forgot_the_base_is_rejected() -> None:
    decision = gate(M, base=(0.70, 0.80), feedback=(0.60, 0.30), tolerance=0.01)
    assert not decision.promote
    assert "base f1_at_threshold 0.7000" in decision.reason and "worse" in decision.reason
    assert "held-back" not in decision.reason  # only the failed condition is the reason


def test_learned_nothing_is_rejected_even_when_the_base_is_intact() -> None:
    decision = gate(M, base=(0.80, 0.80), feedback=(0.30, 0.30))
    assert not decision.promote
    assert "does not beat the champion's 0.3000" in decision.reason


@pytest.mark.parametrize(
    ("feedback", "min_gain", "promote"),
    [
        ((0.31, 0.30), 0.0, True),
        ((0.33, 0.30), 0.05, False),
        ((0.36, 0.30), 0.05, True),
        ((0.2, 0.3), -1.0, True),
    ],
)
def test_feedback_condition_margin(feedback: tuple[float, float], min_gain: float, promote: bool) -> None:
    assert gate(M, base=(0.8, 0.8), feedback=feedback, min_gain=min_gain).promote is promote


@pytest.mark.parametrize(
    ("challenger", "champion", "tolerance", "promote"),
    [
        (0.70, 0.70, 0.0, True),
        (0.695, 0.70, 0.01, True),  # worse, but within the tolerance
        (0.68, 0.70, 0.01, False),  # worse beyond the tolerance
        (0.75, 0.70, -0.1, False),  # a negative tolerance demands an improvement of that much
        (0.81, 0.70, -0.1, True),
        (0.99, 0.0, -1.0, False),
    ],
)
def test_base_condition_tolerance(
    challenger: float, champion: float, tolerance: float, promote: bool
) -> None:
    assert gate(M, base=(challenger, champion), feedback=(0.9, 0.1), tolerance=tolerance).promote is promote


def test_no_champion_promotes_and_no_holdout_says_so() -> None:
    assert gate(M, base=(0.1, None), feedback=None).reason == "no champion yet"
    decision = gate(M, base=(0.8, 0.8), feedback=None)
    assert decision.promote and "only the base set was judged" in decision.reason


@pytest.mark.parametrize("kwargs", [{"tolerance": 2.0}, {"min_gain": -1.5}])
def test_absurd_margins_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"must lie in \[-1, 1\]"):
        gate(M, base=(0.5, 0.5), feedback=None, **kwargs)


def test_decision_numbers_become_version_tags() -> None:
    tags = gate(M, base=(0.70, 0.80), feedback=(0.60, 0.30)).tags()
    assert tags["gate_decision"] == "reject"
    assert tags["gate_feedback_challenger"] == "0.6000" and tags["gate_feedback_champion"] == "0.3000"
    assert tags["gate_base_challenger"] == "0.7000" and tags["gate_base_champion"] == "0.8000"


def _settings(tmp_path: Path, **kw: object) -> RunSettings:
    fields: dict[str, object] = {
        "base_data": tmp_path,
        "eval_data": tmp_path,
        "mlflow_tracking_uri": "none",
        **kw,
    }
    return RunSettings(**fields)  # type: ignore[arg-type]


def test_decide_uses_the_configured_metric_on_both_sets(tmp_path: Path) -> None:
    challenger = {
        "f1_at_threshold": 0.8,
        "f1_ods": 0.9,
        "feedback_f1_at_threshold": 0.5,
        "feedback_f1_ods": 0.6,
    }
    champion = {
        "f1_at_threshold": 0.8,
        "f1_ods": 0.95,
        "feedback_f1_at_threshold": 0.4,
        "feedback_f1_ods": 0.5,
    }
    assert decide(_settings(tmp_path), challenger, champion).promote
    assert not decide(_settings(tmp_path, retrain_metric="f1_ods"), challenger, champion).promote
    assert metric_tags(challenger) == {
        "f1_at_threshold": "0.8000",
        "feedback_f1_at_threshold": "0.5000",
        "f1_ods": "0.9000",
        "feedback_f1_ods": "0.6000",
    }


def test_split_is_seeded_disjoint_and_stable_as_feedback_grows() -> None:
    ids = [f"r{i:03d}" for i in range(50)]
    train, held = split_feedback(ids, 0.2, seed=0)
    assert not set(train) & set(held) and set(train) | set(held) == set(ids)
    assert 4 <= len(held) <= 18  # ~20 %
    assert split_feedback(ids, 0.2, seed=0) == (train, held)
    assert split_feedback(ids, 0.2, seed=1)[1] != held
    more_train, more_held = split_feedback([*ids, *(f"n{i}" for i in range(30))], 0.2, seed=0)
    assert set(held) <= set(more_held) and set(train) <= set(more_train)


@pytest.mark.parametrize(("n", "n_held"), [(1, 0), (2, 1), (3, 1)])
def test_split_holds_back_at_least_one_but_never_all(n: int, n_held: int) -> None:
    train, held = split_feedback([f"x{i}" for i in range(n)], 0.2, seed=0)
    assert len(held) == n_held and len(train) == n - n_held


def test_the_held_back_feedback_is_never_trained_on(tmp_path: Path) -> None:
    from ml.data import synthetic

    synthetic.generate(10, tmp_path / "snap" / "feedback", size=(48, 48), seed=3)
    synthetic.generate(4, tmp_path / "snap" / "base", size=(48, 48), seed=4)
    torch.manual_seed(0)
    config = ModelConfig(base_width=4, depth=2, threshold=0.6)
    champion = save_model(build_model(config), config, tmp_path / "champion")
    params = tmp_path / "params.yaml"
    params.write_text(
        "finetune: {batch_size: 2, crop_size: 32, min_steps: 2, max_steps: 2, threads: 1, device: cpu}\n"
    )
    settings = _settings(tmp_path, retrain_params=params, retrain_holdout_fraction=0.3)
    trained = train_challenger(
        settings,
        base=tmp_path / "snap" / "base",
        feedback=tmp_path / "snap" / "feedback",
        out_dir=tmp_path / "run",
        init_from=champion,
        tags={"run_name": "t"},
    )
    train_dir = tmp_path / "run" / "feedback-split" / "feedback-train"
    held_dir = tmp_path / "run" / "feedback-split" / "feedback-holdout"
    trained_ids = {p.stem for p in (train_dir / "images").iterdir()}
    held_ids = {p.stem for p in (held_dir / "images").iterdir()}
    assert held_ids and not trained_ids & held_ids and len(trained_ids | held_ids) == 10
    assert (
        trained.summary["n_feedback"] == len(trained_ids) and trained.summary["n_replay_images"] == 3
    )  # 1 of 4 base photos picks the threshold
    assert read_config(trained.model_dir).metrics["finetune_feedback_images"] == len(trained_ids)
    # Laid out again (a rerun): the same slice is held back.
    _, again = layout_split(tmp_path / "snap" / "feedback", tmp_path / "again", 0.3, 0)
    assert again is not None and {p.stem for p in (again / "images").iterdir()} == held_ids


def test_a_champion_without_evaluation_tags_gets_the_runs_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bootstrap champion has validation metrics only; the first run tags its base-set evaluation on it."""
    from mlflow import MlflowClient

    from ml.registry import Registry
    from services.retrain.journal import RunJournal
    from services.retrain.plan import RetrainPlan
    from services.retrain.run import RetrainRun

    monkeypatch.chdir(tmp_path)  # the file store's artifacts land here
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)  # no fluent API: other tests leave an active experiment behind
    run = client.create_run(client.create_experiment("gate-test"))
    registry = Registry(uri)
    version = registry.register(run.info.run_id, {"val_f1_ods": "0.8"}).version
    settings = _settings(tmp_path, feedback_dir=tmp_path / "feedback", eval_data=tmp_path / "eval")
    journal = RunJournal(
        run_name="crackseg-retrain-000000000000",
        plan=RetrainPlan(
            run_name="crackseg-retrain-000000000000", watermark=None, target_watermark=None, items=[]
        ),
        parent_version=version,
        champion_metrics={"f1_ods": 0.71, "f1_at_threshold": 0.7, "feedback_f1_ods": 0.5},
    )
    retrain = RetrainRun(settings, registry, None)
    retrain._tag_champion_metrics(journal)
    tags = registry.get(version).tags
    assert tags["f1_ods"] == "0.7100" and tags["f1_at_threshold"] == "0.7000"
    assert tags["eval_data"] == str(tmp_path / "eval") and "feedback_f1_ods" not in tags
    # A champion that already has them keeps its own.
    journal.champion_metrics = {"f1_ods": 0.2, "f1_at_threshold": 0.2}
    retrain._tag_champion_metrics(journal)
    assert registry.get(version).tags["f1_ods"] == "0.7100"
