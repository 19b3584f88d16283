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
    ADMIN_PRINCIPAL,
    KAFKA_VERSION,
    LOG4J2_TEMPLATE,
    NODE_CN,
    SCRAM_MECHANISM,
    KafkaNodeConfig,
    SecureNode,
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
    """A KRaft cluster id: 16 random bytes, base64url without padding (what StorageTool makes),
    never starting with ``-``: ``kafka-storage format -t -Xy...`` would read it as an option
    (seen: 1 format in 64 failed). Kafka's own ``Uuid.randomUuid`` draws again the same way."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _java_argv(libs: Path, *args: str) -> list[str]:
    return [_tool("java"), *args, "-cp", str(libs / "*")]


def broker_count(bootstrap: str, *, timeout_s: float = 2.0,
                 conf: dict[str, Any] | None = None) -> int:
    """How many brokers the metadata of ``bootstrap`` lists (0 when it does not answer).
    ``conf``: client security settings (a secured cluster's :meth:`KafkaCluster.admin_config`)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({**(conf or {}), "bootstrap.servers": bootstrap, "log_level": 0})
    return len(admin.list_topics(timeout=timeout_s).brokers)


def _read_secret(path: Path) -> str:
    lines = path.read_text("utf-8").splitlines()
    if not lines or not lines[0].strip():
        raise EmbeddedProcessError(f"{path}: empty secret")
    return lines[0].strip()


def _write_secret(path: Path) -> None:
    import secrets

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.touch(mode=0o600)
    path.write_text(secrets.token_urlsafe(32) + "\n", "utf-8")


@dataclass(frozen=True)
class ClusterSecurity:
    """A secured cluster's client-facing facts: the CA file clients verify the brokers with,
    and the admin (super user) principal with its secret's file (mode 0600). Never log the
    secret; :meth:`admin_config` holds it."""

    ca_file: Path
    keystore: Path
    admin_secret_file: Path
    admin: str = ADMIN_PRINCIPAL

    def admin_secret(self) -> str:
        return _read_secret(self.admin_secret_file)

    def client_config(self, username: str, password: str) -> dict[str, Any]:
        """librdkafka settings for ``username`` on the SASL_SSL listener."""
        return {"security.protocol": "SASL_SSL", "sasl.mechanism": SCRAM_MECHANISM,
                "sasl.username": username, "sasl.password": password,
                "ssl.ca.location": str(self.ca_file)}

    def admin_config(self) -> dict[str, Any]:
        return self.client_config(self.admin, self.admin_secret())


@dataclass
class KafkaNode:
    """One ``kafka.Kafka`` JVM; formats its storage on first start."""

    config: KafkaNodeConfig
    cluster_id: str
    home: Path  # server.properties, log4j2.properties and server.log live here
    libs: Path
    admin_secret_file: Path | None = None  # secured: the admin's SCRAM user made at format
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
        args = ["kafka.tools.StorageTool", "format", "-t", self.cluster_id, "-c", str(props),
                "--ignore-formatted"]
        if self.admin_secret_file is not None:  # the admin's SCRAM user, bootstrapped
            secret = _read_secret(self.admin_secret_file)
            args += ["--add-scram",
                     f"{SCRAM_MECHANISM}=[name={ADMIN_PRINCIPAL},password=\"{secret}\"]"]
        # the arguments go in a java @argfile (mode 0600, removed at once), never in argv:
        # the admin's password would be readable in /proc/<pid>/cmdline
        argfile = self.home / ".format-args"
        argfile.touch(mode=0o600)
        argfile.write_text("\n".join('"' + a.replace("\\", "\\\\").replace('"', '\\"') + '"'
                                     for a in args) + "\n", "utf-8")
        try:
            done = subprocess.run(
                [*_java_argv(self.libs, "-Xmx256m", *self._log_opts()), f"@{argfile}"],
                capture_output=True, text=True, check=False, timeout=120,
            )
        finally:
            argfile.unlink(missing_ok=True)
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
        ports = [self.config.port, self.config.controller_port]
        if self.config.secure is not None:
            ports.append(self.config.secure.internal_port)
        for port in ports:
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
    secure: bool = False  # SASL_SSL/SCRAM for clients, mTLS between nodes, ACLs enforced
    admin_secret_file: Path | None = None  # secured: default DIR/credentials/admin, generated
    members: list[KafkaNode] = field(default_factory=list, init=False)
    security: ClusterSecurity | None = field(default=None, init=False)
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
            if self.secure and any("internal_port" not in n for n in saved["nodes"]):
                raise EmbeddedProcessError(
                    f"{root} holds an unsecured Kafka cluster; a secured one needs a fresh "
                    "--data-dir (its SCRAM admin is bootstrapped when the nodes are formatted)")
            return saved
        # the port given (node 1's) is not bound yet, so free_port can hand it out again:
        # every port is drawn until it differs from all the others
        taken = {self.port}

        def fresh() -> int:
            while (port := free_port(self.host)) in taken:
                pass
            taken.add(port)
            return port

        ports = [{"port": self.port if i == 0 else fresh(), "controller_port": fresh(),
                  "internal_port": fresh()} for i in range(self.nodes)]
        layout = {"cluster_id": new_cluster_id(), "nodes": ports}
        state.write_text(json.dumps(layout, indent=2), "utf-8")
        return layout

    def _secure_setup(self, root: Path) -> ClusterSecurity:
        """TLS material (made once, under DIR/tls) and the admin's secret file."""
        import datetime as dt

        from shulian.perimeter.tls import make_broker_pki

        tls = root / "tls"
        if not (tls / "node-keystore.pem").is_file():
            make_broker_pki(tls, now=dt.datetime.now(dt.UTC), node_cn=NODE_CN,
                            hosts=tuple(dict.fromkeys((self.host, "127.0.0.1", "localhost"))))
        secret = self.admin_secret_file or root / "credentials" / ADMIN_PRINCIPAL
        if not secret.is_file():
            _write_secret(secret)
        return ClusterSecurity(tls / "ca.pem", tls / "node-keystore.pem", secret)

    def admin_config(self) -> dict[str, Any]:
        """Client security settings of the admin (empty for an unsecured cluster)."""
        return self.security.admin_config() if self.security is not None else {}

    def start(self) -> KafkaCluster:
        libs = kafka_libs()
        if self.data_dir is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="shulian-kafka-"))
        root = (self.data_dir or self._tmp or Path()).resolve()
        root.mkdir(parents=True, exist_ok=True)
        self._lock = lock_data_dir(root)
        try:
            layout = self._layout(root)
            if self.secure:
                self.security = self._secure_setup(root)
            sec = self.security
            voters = tuple(Voter(i + 1, self.host, n["controller_port"])
                           for i, n in enumerate(layout["nodes"]))
            for i, n in enumerate(layout["nodes"]):
                home = root / f"node-{i + 1}"
                node_sec = None if sec is None else SecureNode(
                    n["internal_port"], keystore=sec.keystore, truststore=sec.ca_file)
                cfg = KafkaNodeConfig(node_id=i + 1, host=self.host, port=n["port"],
                                      controller_port=n["controller_port"], voters=voters,
                                      log_dir=home / "data", overrides=self.overrides,
                                      secure=node_sec)
                self.members.append(KafkaNode(
                    cfg, layout["cluster_id"], home, libs,
                    admin_secret_file=None if sec is None else sec.admin_secret_file))
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
        conf = self.admin_config()
        ok = wait_until(lambda: all(n.alive() for n in must_run)
                        and broker_count(self.bootstrap, conf=conf) >= want,
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
