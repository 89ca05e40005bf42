"""The MLflow registry without the mlflow package: resolve ``models:/`` URIs, download a version's files, and
register a model folder (the shipped model's bootstrap).

The lean predictor (``crackseg[serve]``: ONNX Runtime, no torch, no mlflow) serves registry versions through this
client, and its image's init container registers the shipped model with it (``services/up/bootstrap.py``). It asks the MLflow server for the version (``model-versions/get``) or the alias
(``registered-models/alias``), and fetches the version's files one by one through the server's
``model-versions/get-artifact`` route, which reads whatever artifact store the server uses (proxied
``mlflow-artifacts:/`` or a path it can see). The download lands in the cache layout that :class:`ml.registry.Registry`
fills too (:func:`ml.registry.fill_cache`). A folder is registered as the mlflow client would: a run in an
experiment, its files uploaded through the server's artifact proxy (``--serve-artifacts``, MLflow's default) under
the run's ``model/``, params and metrics logged, then a model version whose source is that folder.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ml.config import CONFIG_FILE, ONNX_FILE, WEIGHTS_FILE
from ml.mlflow_rest import MlflowRest, MlflowRestError
from ml.names import CHAMPION_ALIAS, MODEL_NAME
from ml.registry_common import MISSING_CODES, RegistryError, VersionInfo, fill_cache, parse_model_uri

__all__ = ["MODEL_CARD_FILE", "VERSION_FILES", "RestRegistry", "is_servable"]

MODEL_CARD_FILE = "MODEL_CARD.md"
# What a version folder may hold; the config is required, and one of the two runtimes' files.
VERSION_FILES = (CONFIG_FILE, ONNX_FILE, WEIGHTS_FILE, MODEL_CARD_FILE)


def is_servable(path: Path) -> bool:
    """A config plus something to run: ``model.onnx`` (ONNX runtime) or ``model.safetensors`` (torch runtime)."""
    return (path / CONFIG_FILE).is_file() and (
        (path / ONNX_FILE).is_file() or (path / WEIGHTS_FILE).is_file()
    )


def _info(raw: dict[str, Any]) -> VersionInfo:
    return VersionInfo(
        version=str(raw.get("version", "")),
        run_id=raw.get("run_id") or None,
        tags={t["key"]: str(t.get("value", "")) for t in raw.get("tags", []) if "key" in t},
        source=raw.get("source"),
    )


class RestRegistry:
    """Registered model ``name`` on the MLflow server at ``tracking_uri`` (http or https), over REST.

    Errors are :class:`ml.registry.RegistryError` with the server, the model and what failed in the message, as
    with :class:`ml.registry.Registry`. An unreachable server is retried a few times first (``retries``).
    """

    def __init__(
        self, tracking_uri: str, name: str = MODEL_NAME, *, rest: MlflowRest | None = None, retries: int = 3
    ) -> None:
        self.uri = tracking_uri
        self.name = name
        try:
            self.rest = rest or MlflowRest(tracking_uri, retries=retries)
        except MlflowRestError as e:
            raise RegistryError(e.message) from e

    def close(self) -> None:
        self.rest.close()

    def _fail(self, what: str, e: MlflowRestError) -> RegistryError:
        return RegistryError(f"MLflow {self.uri}, model {self.name}: {what}: {e.message}")

    def alias(self, alias: str) -> VersionInfo | None:
        """The version ``alias`` points at, or None when the model or the alias does not exist."""
        try:
            body = self.rest.get_json(
                "/api/2.0/mlflow/registered-models/alias",
                {"name": self.name, "alias": alias},
                missing_ok=True,
            )
        except MlflowRestError as e:
            if e.status in (400, 404) and e.code in MISSING_CODES:
                return None
            raise self._fail(f"read alias {alias}", e) from e
        if body is None or "model_version" not in body:
            return None
        return _info(body["model_version"])

    def get(self, version: str) -> VersionInfo:
        try:
            body = self.rest.get_json(
                "/api/2.0/mlflow/model-versions/get", {"name": self.name, "version": version}
            )
        except MlflowRestError as e:
            raise self._fail(f"get version {version}", e) from e
        if not body or "model_version" not in body:
            raise RegistryError(f"MLflow {self.uri}, model {self.name}: version {version}: empty answer")
        return _info(body["model_version"])

    def champion(self) -> VersionInfo | None:
        return self.alias(CHAMPION_ALIAS)

    def versions(self) -> list[VersionInfo]:
        """Every version of the model, oldest first (none when the model does not exist)."""
        found: list[VersionInfo] = []
        token = None
        try:
            while True:
                params: dict[str, Any] = {"filter": f"name='{self.name}'", "max_results": 200}
                if token:
                    params["page_token"] = token
                body = self.rest.get_json("/api/2.0/mlflow/model-versions/search", params) or {}
                found += [_info(raw) for raw in body.get("model_versions", [])]
                token = body.get("next_page_token")
                if not token:
                    break
        except MlflowRestError as e:
            raise self._fail("list versions", e) from e
        return sorted(found, key=lambda v: int(v.version))

    def resolve(self, uri: str) -> VersionInfo:
        """The version a ``models:/NAME/N`` or ``models:/NAME@ALIAS`` URI names on this server."""
        parsed = parse_model_uri(uri)
        if parsed.name != self.name:
            return RestRegistry(self.uri, parsed.name, rest=self.rest).resolve(uri)
        if parsed.version is not None:
            return self.get(parsed.version)
        assert parsed.alias is not None
        found = self.alias(parsed.alias)
        if found is None:
            raise RegistryError(f"MLflow {self.uri}: {uri}: no such alias (or no such model)")
        return found

    def download(self, version: str, dst: Path) -> Path:
        """The version's files (:data:`VERSION_FILES`, those it has) into ``dst``; returns ``dst``."""
        dst.mkdir(parents=True, exist_ok=True)
        for name in VERSION_FILES:
            try:
                self.rest.download(
                    "/model-versions/get-artifact",
                    {"name": self.name, "version": version, "path": name},
                    dst / name,
                    missing_ok=name != CONFIG_FILE,
                )
            except MlflowRestError as e:
                if name == CONFIG_FILE and e.status == 404:
                    raise RegistryError(
                        f"version {version} of {self.name} has no {CONFIG_FILE}: not a crackseg model"
                    ) from e
                raise self._fail(f"download {name} of version {version}", e) from e
        return dst

    def cached(self, version: str, cache_dir: Path) -> Path:
        """``<cache_dir>/<name>/v<version>``, downloaded once and renamed into place whole."""
        return fill_cache(
            cache_dir / self.name / f"v{version}",
            lambda into: self.download(version, into),
            is_servable,
            f"version {version} of {self.name} has neither {ONNX_FILE} nor {WEIGHTS_FILE}: nothing to serve",
        )

    # -- writing -----------------------------------------------------------------------------------------------
    def _post(self, what: str, path: str, body: dict[str, Any], exists_ok: bool = False) -> dict[str, Any]:
        try:
            return self.rest.post_json(path, body)
        except MlflowRestError as e:
            if exists_ok and e.code == "RESOURCE_ALREADY_EXISTS":
                return {}
            raise self._fail(what, e) from e

    def set_champion(self, version: str) -> None:
        self._post(
            f"set alias {CHAMPION_ALIAS} -> {version}",
            "/api/2.0/mlflow/registered-models/alias",
            {"name": self.name, "alias": CHAMPION_ALIAS, "version": version},
        )

    def ensure_model(self, description: str | None = None) -> None:
        """Create the registered model if it does not exist (a racing creator is fine)."""
        body = {"name": self.name, **({"description": description} if description else {})}
        self._post(
            "create the registered model", "/api/2.0/mlflow/registered-models/create", body, exists_ok=True
        )

    def _experiment_id(self, experiment: str) -> str:
        for _ in range(2):  # a racing creator: create answers RESOURCE_ALREADY_EXISTS, then get finds it
            try:
                found = self.rest.get_json(
                    "/api/2.0/mlflow/experiments/get-by-name",
                    {"experiment_name": experiment},
                    missing_ok=True,
                )
            except MlflowRestError as e:
                raise self._fail(f"read experiment {experiment}", e) from e
            if found and "experiment" in found:
                return str(found["experiment"]["experiment_id"])
            created = self._post(
                f"create experiment {experiment}",
                "/api/2.0/mlflow/experiments/create",
                {"name": experiment},
                True,
            )
            if created.get("experiment_id"):
                return str(created["experiment_id"])
        raise RegistryError(f"MLflow {self.uri}: experiment {experiment} can be neither found nor created")

    def log_folder(
        self, folder: Path, experiment: str, run_name: str, params: dict[str, str], metrics: dict[str, float]
    ) -> tuple[str, str]:
        """A finished run holding ``folder``'s files as its ``model/`` artifacts; returns (run id, model source)."""
        now = int(time.time() * 1000)
        run = self._post(
            "create a run",
            "/api/2.0/mlflow/runs/create",
            {
                "experiment_id": self._experiment_id(experiment),
                "run_name": run_name,
                "start_time": now,
                "tags": [{"key": "mlflow.runName", "value": run_name}],
            },
        )["run"]["info"]
        run_id, artifact_uri = str(run["run_id"]), str(run["artifact_uri"])
        prefix = "mlflow-artifacts:"
        if not artifact_uri.startswith(prefix):
            raise RegistryError(
                f"MLflow {self.uri} stores run artifacts at {artifact_uri}, which only the server's own disk can "
                "reach: start it with --serve-artifacts (MLflow's default) and --artifacts-destination, so files "
                "are uploaded through it"
            )
        # mlflow-artifacts:/<path> or mlflow-artifacts://<host:port>/<path>: the path under the proxy.
        rest = artifact_uri[len(prefix) :]
        relative = rest.lstrip("/") if not rest.startswith("//") else rest[2:].partition("/")[2]
        for item in sorted(folder.iterdir()):
            if item.is_file():
                try:
                    self.rest.upload(
                        f"/api/2.0/mlflow-artifacts/artifacts/{relative}/model/{item.name}", item
                    )
                except MlflowRestError as e:
                    raise self._fail(f"upload {item.name} to run {run_id}", e) from e
        self._post(
            f"log params and metrics of run {run_id}",
            "/api/2.0/mlflow/runs/log-batch",
            {
                "run_id": run_id,
                "params": [{"key": k, "value": str(v)} for k, v in params.items()],
                "metrics": [
                    {"key": k, "value": float(v), "timestamp": now, "step": 0} for k, v in metrics.items()
                ],
            },
        )
        self._post(
            f"finish run {run_id}",
            "/api/2.0/mlflow/runs/update",
            {"run_id": run_id, "status": "FINISHED", "end_time": int(time.time() * 1000)},
        )
        return run_id, f"{artifact_uri}/model"

    def register(self, run_id: str, source: str, tags: dict[str, str]) -> VersionInfo:
        """A new version of ``source`` (a run's model folder), with tags."""
        body = self._post(
            f"register run {run_id}",
            "/api/2.0/mlflow/model-versions/create",
            {
                "name": self.name,
                "source": source,
                "run_id": run_id,
                "tags": [{"key": k, "value": str(v)} for k, v in tags.items()],
            },
        )
        return _info(body["model_version"])
