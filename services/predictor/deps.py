"""FastAPI dependencies as ``Annotated`` aliases; tests swap them with ``app.dependency_overrides``."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request
from kserve.protocol.dataplane import DataPlane

from services.common.feedback import FeedbackStore
from services.predictor.errors import Unauthorized
from services.predictor.model import CracksegModel
from services.predictor.settings import Settings, get_settings

SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_store(settings: SettingsDep) -> FeedbackStore:
    return FeedbackStore(settings.feedback_dir)


def get_model(request: Request) -> CracksegModel:
    model: CracksegModel = request.app.state.model
    return model


def get_dataplane(request: Request) -> DataPlane:
    dataplane: DataPlane = request.app.state.dataplane
    return dataplane


def require_token(settings: SettingsDep, authorization: Annotated[str | None, Header()] = None) -> None:
    """Write endpoints need ``Authorization: Bearer <CRACKSEG_API_TOKEN>`` when a token is configured."""
    expected = settings.token()
    if expected is None:
        return
    if not authorization:
        raise Unauthorized("this endpoint needs an Authorization: Bearer <token> header")
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise Unauthorized("the bearer token is wrong")


StoreDep = Annotated[FeedbackStore, Depends(get_store)]
ModelDep = Annotated[CracksegModel, Depends(get_model)]
DataPlaneDep = Annotated[DataPlane, Depends(get_dataplane)]
AuthDep = Depends(require_token)
