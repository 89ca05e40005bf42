"""Every hostile input gets a clear 4xx with the one error shape, and nothing is written to the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.services.predictor.corpus import Case, hostile_cases

CASES = hostile_cases(max_body=2_000_000, max_side=2000)


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 25


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.name != ".lock"] if root.exists() else []


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_rejected_cleanly(client, settings, case: Case) -> None:  # type: ignore[no-untyped-def]
    response = client.request(
        case.method, case.path, files=case.files, data=case.data, content=case.content, headers=case.headers
    )
    assert response.status_code == case.status, response.text
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    assert _files_under(settings.feedback_dir) == []
    # The server still serves after the bad request.
    assert client.get("/ping").json()["ready"] is True


def test_rejections_are_counted_by_reason(client) -> None:  # type: ignore[no-untyped-def]
    client.post("/predict", files={"file": ("x.jpg", b"not an image", "image/jpeg")})
    text = client.get("/metrics").text
    assert 'crackseg_rejected_inputs_total{reason="not_an_image"}' in text
