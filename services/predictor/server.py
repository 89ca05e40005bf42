"""Running the predictor: load the model (ready after warm-up), then serve HTTP (and KServe gRPC if asked)."""

from __future__ import annotations

import asyncio
import logging

import uvicorn

from services.predictor.app import create_app
from services.predictor.model import CracksegModel
from services.predictor.settings import Settings

log = logging.getLogger(__name__)


async def _serve(settings: Settings, model: CracksegModel) -> None:
    app = create_app(model, settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.http_port,
        log_level="info",
        timeout_graceful_shutdown=10,
        # Liveness and /ping must answer while inferences run, so the event loop never runs the network.
        loop="asyncio",
    )
    servers = [uvicorn.Server(config).serve()]
    if settings.grpc_port is not None:
        from kserve.protocol.grpc.server import GRPCServer
        from kserve.protocol.model_repository_extension import ModelRepositoryExtension

        grpc = GRPCServer(
            settings.grpc_port,
            app.state.dataplane,
            ModelRepositoryExtension(model_registry=app.state.dataplane.model_registry),
            kwargs={"grpc_max_send_message_length": 64 << 20, "grpc_max_receive_message_length": 64 << 20},
        )
        servers.append(grpc.start(max_workers=settings.max_inflight))
    await asyncio.gather(*servers)


def serve(settings: Settings) -> None:
    """Load the model, then serve until SIGINT/SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    model = CracksegModel(settings)
    model.load()
    try:
        asyncio.run(_serve(settings, model))
    finally:
        model.stop()
