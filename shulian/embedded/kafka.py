"""A real Apache Kafka broker (KRaft, combined broker+controller), one node or a local cluster.

The jars come from Maven Central: Maven resolves the committed ``kafka-pom.xml`` into a cache
(``$SHULIAN_KAFKA_CACHE``, else ``$XDG_CACHE_HOME/shulian`` or ``~/.cache/shulian``) on first
use. A node is formatted (``kafka.tools.StorageTool format``) and started (``kafka.Kafka``) with
the properties of :mod:`shulian.embedded.kafka_config`. A cluster directory looks like::

    DIR/cluster.json   cluster id and ports, chosen the first time (reused on restart)
    DIR/node-<id>/     server.properties, log4j2.properties, data/ (log dirs), server.log
    DIR/.lock          held while a cluster runs on DIR
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any

from shulian.embedded.kafka_config import (
    KAFKA_VERSION,
    LOG4J2_TEMPLATE,
    KafkaNodeConfig,
    Voter,
    node_properties,
    render_properties,
)
from shulian.embedded.net import free_port, port_free, wait_until
from shulian.embedded.process import lock_data_dir, spawn, stop_process, unlock
from shulian.errors import EmbeddedProcessError
from shulian.log import get_logger

log = get_logger(__name__)

POM = Path(__file__).with_name("kafka-pom.xml")
HEAP = ("-Xms256m", "-Xmx512m")
INSTALL_HINT = {
    "java": "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)",
    "mvn": "install Apache Maven (Debian: apt-get install maven)",
}


def _cache_root() -> Path:
    if env := os.environ.get("SHULIAN_KAFKA_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "shulian"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise EmbeddedProcessError(
            f"the kafka engine needs `{name}` on PATH and it is not there: {INSTALL_HINT[name]}"
            " (or use the default engine, tansu, which needs no JVM)")
    return path


def kafka_libs(*, cache: Path | None = None) -> Path:
    """The directory of Kafka's jars, resolved by Maven into the cache the first time."""
    _tool("java")  # checked first: a cache hit must not hide a missing JVM until start
    root = (cache or _cache_root()) / f"kafka-{KAFKA_VERSION}"
    libs = root / "libs"
    if (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file():
        return libs
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "wb") as lock:  # two processes resolving at once wait in turn
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file():
            return libs
        mvn = _tool("mvn")
        work = Path(tempfile.mkdtemp(prefix="resolve-", dir=root))
        shutil.copyfile(POM, work / "pom.xml")
        log.info("kafka.resolving_jars", version=KAFKA_VERSION, cache=str(root))
        done = subprocess.run(
            [mvn, "-q", "-B", "dependency:copy-dependencies", "-DoutputDirectory=libs",
             "-DincludeScope=runtime"],
            cwd=work, capture_output=True, text=True, check=False, timeout=900,
        )
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
            shutil.rmtree(work, ignore_errors=True)
            raise EmbeddedProcessError(
                f"Maven could not resolve Apache Kafka {KAFKA_VERSION} from {POM}: "
                + " | ".join(tail))
        shutil.rmtree(libs, ignore_errors=True)
        (work / "libs").rename(libs)
        shutil.rmtree(work, ignore_errors=True)
    return libs


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, base64url without padding (what StorageTool makes)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _java_argv(libs: Path, *args: str) -> list[str]:
    return [_tool("java"), *args, "-cp", str(libs / "*")]


def broker_count(bootstrap: str, *, timeout_s: float = 2.0) -> int:
    """How many brokers the metadata of ``bootstrap`` lists (0 when it does not answer)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    return len(admin.list_topics(timeout=timeout_s).brokers)


@dataclass
class KafkaNode:
    """One ``kafka.Kafka`` JVM; formats its storage on first start."""

    config: KafkaNodeConfig
    cluster_id: str
    home: Path  # server.properties, log4j2.properties and server.log live here
    libs: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    @property
    def log_file(self) -> Path:
        return self.home / "server.log"

    def write_config(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        props = self.home / "server.properties"
        props.write_text(render_properties(node_properties(self.config)), "utf-8")
        (self.home / "log4j2.properties").write_text(
            LOG4J2_TEMPLATE.format(log_file=self.log_file), "utf-8")
        return props

    def format(self) -> None:
        """Format the log dir for the cluster id, unless it already is."""
        props = self.write_config()
        if (self.config.log_dir / "meta.properties").exists():
            return
        done = subprocess.run(
            [*_java_argv(self.libs, "-Xmx256m", *self._log_opts()), "kafka.tools.StorageTool",
             "format", "-t", self.cluster_id, "-c", str(props), "--ignore-formatted"],
            capture_output=True, text=True, check=False, timeout=120,
        )
        if done.returncode != 0:
            raise EmbeddedProcessError(
                f"formatting Kafka node {self.config.node_id} failed: "
                + (done.stdout + done.stderr).strip()[-400:])

    def _log_opts(self) -> list[str]:
        return [f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
                f"-Dkafka.logs.dir={self.home}"]

    def start(self) -> None:
        """Spawn the JVM (after ``format``); readiness is the cluster's to wait for."""
        props = self.write_config()
        for port in (self.config.port, self.config.controller_port):
            if not wait_until(partial(port_free, self.config.host, port), timeout_s=30):
                raise EmbeddedProcessError(f"port {port} on {self.config.host} stays in use")
        argv = [*_java_argv(self.libs, *HEAP, "-XX:+UseG1GC", "-Djava.awt.headless=true",
                            *self._log_opts()), "kafka.Kafka", str(props)]
        self.proc = spawn(argv, log_file=self.home / "stdout.log")
        log.info("kafka.node_starting", node=self.config.node_id, bootstrap=self.bootstrap)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, no shutdown: what a crashed machine looks like to the others."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self, *, timeout_s: float = 20.0) -> None:
        if self.proc is not None:
            code = stop_process(self.proc, timeout_s=timeout_s)
            log.info("kafka.node_stopped", node=self.config.node_id, code=code)


@dataclass
class KafkaCluster:
    """``nodes`` combined broker+controller nodes on loopback; node 1 listens on ``port``.

    Without ``data_dir`` everything lives in a temp folder removed by :meth:`stop`.
    """

    host: str = "127.0.0.1"
    port: int = 9092
    nodes: int = 1
    data_dir: Path | None = None
    ready_timeout_s: float = 120.0
    overrides: tuple[tuple[str, str], ...] = ()
    members: list[KafkaNode] = field(default_factory=list, init=False)
    _tmp: Path | None = field(default=None, init=False, repr=False)
    _lock: IO[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.members) or f"{self.host}:{self.port}"

    @property
    def log_dir(self) -> Path | None:
        return self.data_dir or self._tmp

    def _layout(self, root: Path) -> dict[str, Any]:
        """Cluster id and ports: from ``cluster.json`` when present, else chosen and saved."""
        state = root / "cluster.json"
        if state.exists():
            saved: dict[str, Any] = json.loads(state.read_text("utf-8"))
            if len(saved["nodes"]) != self.nodes:
                raise EmbeddedProcessError(
                    f"{root} holds a {len(saved['nodes'])}-node Kafka cluster, not {self.nodes}"
                    " (a KRaft quorum cannot change size by restarting; use another --data-dir)")
            saved["nodes"][0]["port"] = self.port
            return saved
        # the port given (node 1's) is not bound yet, so free_port can hand it out again:
        # every port is drawn until it differs from all the others
        taken = {self.port}

        def fresh() -> int:
            while (port := free_port(self.host)) in taken:
                pass
            taken.add(port)
            return port

        ports = [{"port": self.port if i == 0 else fresh(), "controller_port": fresh()}
                 for i in range(self.nodes)]
        layout = {"cluster_id": new_cluster_id(), "nodes": ports}
        state.write_text(json.dumps(layout, indent=2), "utf-8")
        return layout

    def start(self) -> KafkaCluster:
        libs = kafka_libs()
        if self.data_dir is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="shulian-kafka-"))
        root = (self.data_dir or self._tmp or Path()).resolve()
        root.mkdir(parents=True, exist_ok=True)
        self._lock = lock_data_dir(root)
        try:
            layout = self._layout(root)
            voters = tuple(Voter(i + 1, self.host, n["controller_port"])
                           for i, n in enumerate(layout["nodes"]))
            for i, n in enumerate(layout["nodes"]):
                home = root / f"node-{i + 1}"
                cfg = KafkaNodeConfig(node_id=i + 1, host=self.host, port=n["port"],
                                      controller_port=n["controller_port"], voters=voters,
                                      log_dir=home / "data", overrides=self.overrides)
                self.members.append(KafkaNode(cfg, layout["cluster_id"], home, libs))
            with ThreadPoolExecutor(max_workers=self.nodes) as pool:
                list(pool.map(KafkaNode.format, self.members))
            for node in self.members:
                node.start()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, *, timeout_s: float | None = None,
                   starting: list[KafkaNode] | None = None) -> None:
        """Until the ``starting`` nodes (default: all) run and every live node is listed in the
        metadata (and so a controller is elected)."""
        timeout = self.ready_timeout_s if timeout_s is None else timeout_s
        must_run = self.members if starting is None else starting
        want = sum(1 for n in self.members if n.alive())
        ok = wait_until(lambda: all(n.alive() for n in must_run)
                        and broker_count(self.bootstrap) >= want,
                        timeout_s=timeout, interval_s=0.3)
        if not ok:
            dead = [n.config.node_id for n in must_run if not n.alive()]
            raise EmbeddedProcessError(
                f"Kafka did not list {want} broker(s) on {self.bootstrap} within {timeout}s"
                + (f" (node(s) {dead} exited)" if dead else "")
                + f"; see {self.members[0].log_file if self.members else self.log_dir}")
        log.info("kafka.ready", bootstrap=self.bootstrap, nodes=want)

    def alive(self) -> bool:
        return bool(self.members) and all(n.alive() for n in self.members)

    def node(self, node_id: int) -> KafkaNode:
        return self.members[node_id - 1]

    def restart(self, node_id: int) -> None:
        """Start a node that was killed or stopped again (same ports, same data); wait until
        every live node is listed."""
        node = self.node(node_id)
        if node.alive():
            raise EmbeddedProcessError(f"Kafka node {node_id} is still running")
        node.start()
        self.wait_ready(starting=[node])

    def stop(self, *, timeout_s: float = 20.0, keep_logs: bool = False) -> None:
        """SIGTERM every node at once (a node stopping alone in a cluster that lost its quorum
        would wait for a controller that is gone), SIGKILL after ``timeout_s``. A temporary
        folder (data and logs, no --data-dir) is removed unless ``keep_logs`` (a node died)."""
        if self.members:
            with ThreadPoolExecutor(max_workers=len(self.members)) as pool:
                list(pool.map(lambda n: n.stop(timeout_s=timeout_s), self.members))
        unlock(self._lock)
        self._lock = None
        if self._tmp is not None and not keep_logs:
            shutil.rmtree(self._tmp, ignore_errors=True)
