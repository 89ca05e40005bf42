"""The local system: which processes ``crackseg up`` runs, in what order, with what environment."""

from __future__ import annotations

import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ml.registry import CHAMPION_URI
from services.common.procs import MLFLOW_ENV, mlflow_server_command
from services.retrain.executors import stop_active_run
from services.up.settings import UpSettings
from services.up.supervisor import PidLock, ServiceSpec, Supervisor, UpError

CRACKSEG = str(Path(sys.executable).with_name("crackseg"))


class LocalSystem:
    """MLflow → registry bootstrap → predictor → UI → Prometheus (optional), plus the trigger on an interval."""

    def __init__(self, settings: UpSettings, echo: Callable[[str], None] = print) -> None:
        self.s = settings
        self.echo = echo
        self.state = settings.state_dir.resolve()
        self.supervisor = Supervisor(self.state / "logs", echo=echo)
        self.lock = PidLock(self.state / "up.pid")
        self._stop = threading.Event()

    # -- environment shared by every child -------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        s, st = self.s, self.state
        env = {
            "MLFLOW_TRACKING_URI": s.url(s.mlflow_port),
            "CRACKSEG_FEEDBACK_DIR": str(st / "feedback"),
            "CRACKSEG_MODELS_DIR": str(st / "models"),
            "CRACKSEG_MODEL_CACHE_DIR": str(st / "model-cache"),
            "CRACKSEG_DVC_REMOTE": str(st / "dvc-storage"),
            "CRACKSEG_RETRAIN_THRESHOLD": str(s.retrain_threshold),
            "CRACKSEG_PREDICTOR_URL": s.url(s.predictor_port),
            "PREDICTOR_URL": s.url(s.predictor_port),
            "CRACKSEG_EXECUTOR": "local",
            "CRACKSEG_ROLLOUT": "http",
            "CRACKSEG_WORK_DIR": str(st / "retrain"),
            "CRACKSEG_RETRAIN_LOG_DIR": str(st / "logs"),
            "OMP_WAIT_POLICY": "PASSIVE",
        }
        env["CRACKSEG_BASE_DATA"] = str((s.base_data or st / "data" / "base").resolve())
        env["CRACKSEG_EVAL_DATA"] = str((s.eval_data or st / "data" / "eval").resolve())
        env["CRACKSEG_RETRAIN_PARAMS"] = str(s.retrain_params.resolve())
        return env

    def prepare_data(self) -> None:
        """Without datasets of the user's own, retraining uses synthetic base and evaluation sets (made once).

        The evaluation set has its own seed, so it never overlaps the base set, and feedback never enters it.
        """
        from ml.data import synthetic

        for given, name, n, seed in (
            (self.s.base_data, "base", self.s.synthetic_base_images, 1),
            (self.s.eval_data, "eval", self.s.synthetic_eval_images, 2),
        ):
            root = self.state / "data" / name
            if given is not None or (root / ".complete").is_file():
                continue
            self.echo(f"  preparing   synthetic {name} set ({n} images, once) in {root}")
            synthetic.generate(n, root, seed=seed, workers=2)
            (root / ".complete").write_text("")

    def services(self) -> list[ServiceSpec]:
        s, st, env = self.s, self.state, self.env()
        specs = [
            ServiceSpec(
                "mlflow",
                mlflow_server_command(st / "mlflow", s.host, s.mlflow_port),
                port=s.mlflow_port,
                health_url=f"{s.url(s.mlflow_port)}/health",
                env={**env, **MLFLOW_ENV},
                start_timeout=180,
            ),
            ServiceSpec(
                "predictor",
                [
                    CRACKSEG,
                    "serve",
                    "--model",
                    CHAMPION_URI,
                    "--host",
                    s.host,
                    "--port",
                    str(s.predictor_port),
                ],
                port=s.predictor_port,
                health_url=f"{s.url(s.predictor_port)}/v2/health/ready",
                env=env,
                start_timeout=180,
            ),
            ServiceSpec(
                "ui",
                [CRACKSEG, "ui", "--address", s.host, "--port", str(s.ui_port)],
                port=s.ui_port,
                health_url=f"{s.url(s.ui_port)}/_stcore/health",
                env=env,
            ),
        ]
        prometheus = shutil.which("prometheus")
        if prometheus and s.prometheus_config.is_file():
            config = self.write_prometheus_config()
            specs.append(
                ServiceSpec(
                    "prometheus",
                    [
                        prometheus,
                        f"--config.file={config}",
                        f"--storage.tsdb.path={st / 'prometheus'}",
                        f"--web.listen-address={s.host}:{s.prometheus_port}",
                    ],
                    port=s.prometheus_port,
                    health_url=f"{s.url(s.prometheus_port)}/-/ready",
                    env=env,
                )
            )
        return specs

    def write_prometheus_config(self) -> Path:
        """``monitoring/prometheus.yml`` with the predictor's actual address and absolute rule paths."""
        import yaml

        from ml.fsutil import atomic_write_bytes

        source = self.s.prometheus_config.resolve()
        config = yaml.safe_load(source.read_text())
        config["rule_files"] = [str(source.parent / r) for r in config.get("rule_files", [])]
        for job in config.get("scrape_configs", []):
            if job.get("job_name") == "crackseg-predictor":
                job["static_configs"] = [{"targets": [f"{self.s.host}:{self.s.predictor_port}"]}]
        target = self.state / "prometheus.yml"
        atomic_write_bytes(target, yaml.safe_dump(config, sort_keys=False).encode())
        return target

    # -- lifecycle -------------------------------------------------------------------------------------------
    def run(self) -> int:
        """Start everything, print where it is, supervise until Ctrl-C / SIGTERM or a crash; stop all."""
        self.lock.acquire()
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            signal.signal(sig, lambda *_: self._stop.set())
        try:
            specs = self.services()
            self.supervisor.check_ports(specs)
            self.echo(f"crackseg: state in {self.state}")
            self.prepare_data()
            mlflow, rest = specs[0], specs[1:]
            self.supervisor.start(mlflow)
            self.bootstrap_registry()
            for spec in rest:
                if self._stop.is_set():
                    return 130
                self.supervisor.start(spec)
            self.print_welcome(has_prometheus=any(s.name == "prometheus" for s in specs))
            return self.supervise()
        finally:
            self.stop_retrain()
            self.supervisor.stop_all()
            self.lock.release()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.echo("crackseg: stopped")

    def supervise(self) -> int:
        next_trigger = time.monotonic() + self.s.trigger_interval_s
        while not self._stop.wait(0.5):
            dead = self.supervisor.dead()
            if dead:
                for r in dead:
                    self.echo(
                        f"crackseg: {r.spec.name} exited with code {r.proc.returncode}; see {r.log_path}"
                    )
                return 1
            if time.monotonic() >= next_trigger:
                code = self.supervisor.run_once(
                    "trigger", [CRACKSEG, "retrain", "trigger"], self.env(), timeout=120
                )
                if code != 0:
                    self.echo(
                        f"crackseg: retrain trigger exited with {code}; see {self.state / 'logs'}/trigger.log"
                    )
                next_trigger = time.monotonic() + self.s.trigger_interval_s
        return 0

    def stop_retrain(self) -> None:
        """Stop a retraining run the trigger started: it runs in its own session, outside every service group."""
        stopped = stop_active_run(retrain_journal_dir(self.state))
        if stopped is not None:
            self.echo(f"  stopped     retraining run (pid {stopped}); the next start resumes it")

    def bootstrap_registry(self) -> None:
        """Register the starter model as version 1 with alias ``champion`` when the registry is empty."""
        from services.up.bootstrap import ensure_champion

        version = ensure_champion(self.s.url(self.s.mlflow_port), self.s.initial_model)
        self.echo(f"  registry    champion is crackseg version {version}")

    def print_welcome(self, has_prometheus: bool) -> None:
        s = self.s
        lines = [
            "",
            "crackseg is up:",
            f"  UI          {s.url(s.ui_port)}   (upload a photo, correct the mask, send feedback)",
            f"  predictor   {s.url(s.predictor_port)}/docs   (OpenAPI; try: curl -F file=@photo.jpg "
            f"{s.url(s.predictor_port)}/predict)",
            f"  MLflow      {s.url(s.mlflow_port)}   (runs and the model registry)",
        ]
        if has_prometheus:
            lines.append(f"  Prometheus  {s.url(s.prometheus_port)}")
        else:
            lines.append("  Prometheus  not started (install it: sudo apt-get install prometheus)")
        lines += [
            f"  retraining  trigger every {s.trigger_interval_s:.0f}s, threshold {s.retrain_threshold} labelled images",
            f"  logs        {self.state / 'logs'}",
            "Stop with Ctrl-C or `make down`.",
        ]
        self.echo("\n".join(lines))


def retrain_journal_dir(state: Path) -> Path:
    """Where the local retraining runs keep their journals and lock (``CRACKSEG_FEEDBACK_DIR``/state/retrain)."""
    return state / "feedback" / "state" / "retrain"


def stop_running(state_dir: Path, timeout: float = 60.0, echo: Callable[[str], None] = print) -> bool:
    """Ask a running supervisor to stop (SIGTERM) and wait for it; False when none runs.

    A retraining run left behind by a supervisor that died is stopped too.
    """
    import os

    from services.up.supervisor import read_supervisor_pid

    pid = read_supervisor_pid(state_dir.resolve() / "up.pid")
    if pid is None:
        orphan = stop_active_run(retrain_journal_dir(state_dir.resolve()))
        echo("crackseg is not running" + (f" (stopped a retraining run, pid {orphan})" if orphan else ""))
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if read_supervisor_pid(state_dir.resolve() / "up.pid") is None:
            echo(f"crackseg stopped (supervisor pid {pid})")
            return True
        time.sleep(0.3)
    raise UpError(f"supervisor pid {pid} did not stop within {timeout:.0f}s")
