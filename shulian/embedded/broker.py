"""The embedded Kafka-compatible broker: Tansu in memory, or Tansu on SeaweedFS S3 (durable).

Durable mode (``data_dir`` given) lays out the directory as::

    DIR/ports.json   the SeaweedFS ports chosen the first time (reused on restart)
    DIR/seaweed/     SeaweedFS data (volumes, filer metadata)
    DIR/logs/        weed.log, tansu.log
    DIR/.lock        held while a broker runs on DIR (two brokers on one DIR would corrupt it)

In memory (no ``data_dir``) Tansu logs to a private temporary folder (0700) made for the run,
removed when the broker stops; kept only when it failed to start (the error names the log).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from shulian.embedded.process import lock_data_dir, unlock
from shulian.embedded.seaweed import PORTS_FILE, SeaweedProcess, load_or_allocate_ports
from shulian.embedded.tansu import TansuProcess
from shulian.log import get_logger

log = get_logger(__name__)

BUCKET = "tansu"


def s3_env(endpoint: str) -> dict[str, str]:
    """Environment for Tansu's S3 client talking to a local SeaweedFS (no real credentials)."""
    return {
        "AWS_ACCESS_KEY_ID": "shulian",
        "AWS_SECRET_ACCESS_KEY": "shulian",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT": endpoint,
        "AWS_ALLOW_HTTP": "true",
    }


@dataclass
class EmbeddedBroker:
    """Start, watch and stop the embedded broker (and its object store in durable mode)."""

    host: str = "127.0.0.1"
    port: int = 9092
    data_dir: Path | None = None
    ready_timeout_s: float = 90.0
    # weed's graceful stop takes ~25 s (its filer waits 15 s for gRPC streams to drain, then
    # ~10 s more). Tansu is stopped first, so nothing is in flight; weed's files are written
    # through the OS, so a SIGKILL after this grace loses nothing acknowledged (the durable
    # test restarts through exactly this path).
    store_stop_timeout_s: float = 5.0
    log_dir: Path | None = None
    tansu: TansuProcess | None = field(default=None, init=False, repr=False)
    seaweed: SeaweedProcess | None = field(default=None, init=False, repr=False)
    _lock: IO[bytes] | None = field(default=None, init=False, repr=False)
    _temp_logs: Path | None = field(default=None, init=False, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def durable(self) -> bool:
        return self.data_dir is not None

    def start(self) -> EmbeddedBroker:
        if self.data_dir is None:
            if self.log_dir is None:
                self._temp_logs = Path(tempfile.mkdtemp(prefix="shulian-broker-"))  # 0700
                self.log_dir = self._temp_logs
            logs = self.log_dir
            self.tansu = TansuProcess(host=self.host, port=self.port, log_file=logs / "tansu.log")
            try:
                self.tansu.start(ready_timeout_s=self.ready_timeout_s)
            except BaseException:
                self._temp_logs = None  # the error names its log: keep it
                self.stop()
                raise
            return self
        data = self.data_dir.resolve()
        data.mkdir(parents=True, exist_ok=True)
        self._lock = lock_data_dir(data)
        self.log_dir = self.log_dir or data / "logs"
        try:
            ports = load_or_allocate_ports(data / PORTS_FILE)
            self.seaweed = SeaweedProcess(data_dir=data / "seaweed", ports=ports,
                                          log_file=self.log_dir / "weed.log")
            self.seaweed.start(ready_timeout_s=self.ready_timeout_s)
            self.seaweed.ensure_bucket(BUCKET, timeout_s=self.ready_timeout_s)
            self.tansu = TansuProcess(
                host=self.host, port=self.port, storage_engine=f"s3://{BUCKET}/",
                env=s3_env(self.seaweed.s3_endpoint), log_file=self.log_dir / "tansu.log",
            )
            self.tansu.start(ready_timeout_s=self.ready_timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def alive(self) -> bool:
        tansu_ok = self.tansu is not None and self.tansu.alive()
        store_ok = self.seaweed is None or self.seaweed.alive()
        return tansu_ok and store_ok

    def stop(self, *, keep_logs: bool = False) -> None:
        """Stop Tansu first (it writes to the store), then SeaweedFS; wait for both to exit.
        A temporary log folder is removed unless ``keep_logs`` (e.g. the broker died)."""
        if self.tansu is not None:
            self.tansu.stop()
        if self.seaweed is not None:
            self.seaweed.stop(timeout_s=self.store_stop_timeout_s)
        unlock(self._lock)
        self._lock = None
        if self._temp_logs is not None and not keep_logs:
            shutil.rmtree(self._temp_logs, ignore_errors=True)
            self._temp_logs = None
