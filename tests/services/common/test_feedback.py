import json
from datetime import UTC, datetime, timedelta
from threading import Thread

import pytest

from services.common.feedback import FeedbackStore, RetrainOutcome, Watermark

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _save(store, data=b"img-1", **kw):
    return store.save(data, "jpg", 4, 3, **kw)


def test_save_writes_content_addressed_files_and_record(tmp_path):
    store = FeedbackStore(tmp_path)
    record, dup = _save(store, mask_png=b"mask", predicted_png=b"pred", verdict="missed_cracks", now=T0)
    assert not dup
    assert len(record.id) == 64
    assert (tmp_path / record.image_file).read_bytes() == b"img-1"
    assert record.mask_file is not None and (tmp_path / record.mask_file).read_bytes() == b"mask"
    on_disk = json.loads((tmp_path / "records" / f"{record.id}.json").read_text())
    assert on_disk["has_mask"] is True and on_disk["verdict"] == "missed_cracks"
    assert record.labelled and record.label_file == record.mask_file
    assert record.mask_file.startswith(f"masks/{record.id}-")


def test_a_newer_label_never_overwrites_the_file_an_older_one_points_at(tmp_path):
    store = FeedbackStore(tmp_path)
    first, _ = _save(store, mask_png=b"first mask", now=T0)
    second, _ = _save(store, mask_png=b"second mask", now=T0 + timedelta(seconds=1))
    assert first.mask_file != second.mask_file
    assert store.path(first.mask_file).read_bytes() == b"first mask"
    assert store.path(second.mask_file).read_bytes() == b"second mask"


def test_identical_images_deduplicate_and_newer_label_wins(tmp_path):
    store = FeedbackStore(tmp_path)
    first, _ = _save(store, verdict="false_cracks", comment="a", now=T0)
    second, dup = _save(store, verdict="correct", predicted_png=b"p", now=T0 + timedelta(seconds=5))
    assert dup and first.id == second.id
    assert second.verdict == "correct" and second.created_at == T0
    assert [h.verdict for h in second.history] == ["false_cracks"]
    assert len(list(store.records())) == 1


def test_labelled_means_mask_or_correct_verdict_with_prediction(tmp_path):
    store = FeedbackStore(tmp_path)
    _save(store, b"a", verdict="correct", predicted_png=b"p", now=T0)
    _save(store, b"b", verdict="correct", now=T0)  # no stored prediction: nothing to train on
    _save(store, b"c", verdict="other", now=T0)
    _save(store, b"d", mask_png=b"m", now=T0)
    stats = store.stats(threshold=2)
    assert (stats.total, stats.labelled, stats.unlabelled) == (4, 2, 2)
    assert stats.by_verdict["correct"] == 2 and stats.by_verdict["none"] == 1
    assert stats.threshold == 2


def test_watermark_splits_old_from_new(tmp_path):
    store = FeedbackStore(tmp_path)
    _save(store, b"a", mask_png=b"m", now=T0)
    _save(store, b"b", mask_png=b"m", now=T0 + timedelta(hours=1))
    store.write_watermark(Watermark(watermark=T0 + timedelta(minutes=30), run="r1", model_version="2"))
    assert [r.updated_at for r in store.labelled_since(store.read_watermark())] == [T0 + timedelta(hours=1)]
    stats = store.stats()
    assert stats.since_watermark == 1 and stats.labelled_since_watermark == 1


def test_retrain_outcomes_are_kept_newest_last(tmp_path):
    store = FeedbackStore(tmp_path)
    store.record_retrain(RetrainOutcome(run="r1", outcome="rejected", reason="worse"))
    store.record_retrain(RetrainOutcome(run="r2", outcome="promoted", model_version="3"))
    assert [r.run for r in store.retrain_runs()] == ["r1", "r2"]
    assert store.stats().last_retrain.model_version == "3"


def test_unreadable_records_are_skipped(tmp_path):
    store = FeedbackStore(tmp_path)
    _save(store, now=T0)
    (tmp_path / "records" / ("0" * 64 + ".json")).write_text("{broken")
    assert len(list(store.records())) == 1


def test_malformed_files_are_skipped_and_counted_and_never_fail_a_save(tmp_path):
    """Issue 14 item 5: the save route calls stats() after writing; a bad file must not turn that into a 500."""
    store = FeedbackStore(tmp_path)
    store.record_retrain(RetrainOutcome(run="r1", outcome="promoted", model_version="2"))
    runs = json.loads((tmp_path / "state" / "retrain_runs.json").read_text())
    runs.append({"run": "r2", "outcome": "exploded"})  # an outcome this version does not know
    (tmp_path / "state" / "retrain_runs.json").write_text(json.dumps(runs))
    first, _ = _save(store, verdict="other", now=T0)
    (tmp_path / "records" / f"{first.id}.json").write_text('{"id": "truncated')  # this image's own record
    (tmp_path / "records" / ("0" * 64 + ".json")).write_text("{broken")

    record, dedup = _save(store, verdict="correct", predicted_png=b"pred", now=T0 + timedelta(seconds=1))
    stats = store.stats(threshold=5)
    assert not dedup and record.labelled  # the malformed record was replaced by a good one
    assert stats.total == 1 and stats.labelled == 1
    assert stats.skipped == 2  # the broken record file and the unknown run outcome
    assert stats.last_retrain is not None and stats.last_retrain.run == "r1"

    (tmp_path / "state" / "watermark.json").write_text("not json")
    assert store.stats().skipped == 3  # reported
    with pytest.raises(ValueError, match=r"watermark\.json is malformed"):
        store.read_watermark()  # but the trigger must not count from a guessed watermark


@pytest.mark.parametrize(("kwargs", "match"), [({"verdict": "great"}, "unknown verdict")])
def test_bad_values_are_rejected_before_writing(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _save(FeedbackStore(tmp_path), **kwargs)
    assert not (tmp_path / "records").exists()


def test_bad_extension_and_path_escape_are_rejected(tmp_path):
    store = FeedbackStore(tmp_path)
    with pytest.raises(ValueError, match="extension"):
        store.save(b"x", "../jpg", 1, 1)
    with pytest.raises(ValueError, match="outside"):
        store.path("../../etc/passwd")


def test_concurrent_saves_of_the_same_image_keep_one_consistent_record(tmp_path):
    store = FeedbackStore(tmp_path)
    threads = [Thread(target=_save, args=(store,), kwargs={"verdict": "other"}) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (record,) = list(store.records())
    assert len(record.history) == 7
    assert not list(tmp_path.rglob("*.tmp"))
