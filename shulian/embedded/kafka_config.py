"""The Apache Kafka broker's configuration, as data: one source for ``--engine kafka`` and compose.

:data:`SHARED_PROPERTIES` and :func:`cluster_properties` are what every broker of a Shulian
deployment runs with; docker-compose.yml sets the same values as ``KAFKA_*`` variables of the
apache/kafka image, and tests/unit/test_kafka_config.py holds the two equal (compose cannot be
started here, so the test is what keeps them one configuration). :func:`node_properties` adds
what differs per node: its id, listeners, quorum voters and log directory.

Listeners are data (:class:`Listener`), so a deployment can add one with another security
protocol (SASL_SSL for agencies, say) by giving ``extra_listeners`` and its settings in
``overrides``, without changing how the rest is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

KAFKA_VERSION = "4.1.1"
"""The Apache Kafka release the tests run and compose deploys (kafka-pom.xml, the image tag)."""

CONTROLLER = "CONTROLLER"
INTER_BROKER = "PLAINTEXT"

# --- the secured broker (docs/SECURITY.md) ---------------------------------------------------
CLIENT = "CLIENT"  # SASL_SSL + SCRAM-SHA-512: every client, agencies and components alike
INTERNAL = "INTERNAL"  # SSL with client certificates: the nodes among themselves
SCRAM_MECHANISM = "SCRAM-SHA-512"
ADMIN_PRINCIPAL = "admin"
"""The one SCRAM super user: ``shulian acl apply`` and topic set-up run as it. Bootstrapped when
a node is formatted (``StorageTool format --add-scram``), since SCRAM users live in the
metadata log and the broker must be reachable by someone before any can be created."""
NODE_CN = "shulian-kafka-node"
"""The nodes' certificate subject: their principal (``User:CN=...``) on the mutual-TLS
controller and inter-broker listeners. KRaft controllers cannot authenticate with SCRAM (the
credentials are in the very log the controllers serve), and the StandardAuthorizer lets only
super users in before the metadata is loaded, so the nodes' principal is a super user; nothing
but a holder of the nodes' private key can present it."""
STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"

SHARED_PROPERTIES: dict[str, str] = {
    "process.roles": "broker,controller",  # every node votes in the quorum and serves data
    "controller.listener.names": CONTROLLER,
    "inter.broker.listener.name": INTER_BROKER,
    # every topic is created explicitly (`shulian init`, the registry, sinks): a typo in a
    # producer's topic name must fail, not make a topic with the wrong partitions
    "auto.create.topics.enable": "false",
    "unclean.leader.election.enable": "false",  # never elect a replica that lacks acked writes
    # nothing expires by age: audit.* and control.sharing-list are the record of what was
    # shared, and replaying an audit reads canonical.* at the audited offsets (docs/DEPLOY.md)
    "log.retention.ms": "-1",
    # a consumer group's first member is assigned at once instead of after 3 s; the chain's
    # workers join cooperatively, so a later member costs one incremental rebalance
    "group.initial.rebalance.delay.ms": "0",
}


def cluster_properties(*, nodes: int, partitions: int = 3) -> dict[str, str]:
    """What depends on the cluster's size: replication factor = nodes (at most 3), and a write
    acknowledged by ``acks=all`` is on two replicas when there are three."""
    rf = min(nodes, 3)
    isr = 2 if rf >= 3 else 1
    return {
        "num.partitions": str(partitions),
        "default.replication.factor": str(rf),
        "min.insync.replicas": str(isr),
        "offsets.topic.replication.factor": str(rf),
        "transaction.state.log.replication.factor": str(rf),
        "transaction.state.log.min.isr": str(isr),
    }


def secure_properties(*, keystore: str, truststore: str,
                      sasl_listeners: tuple[str, ...] = (CLIENT,)) -> dict[str, str]:
    """What a secured node runs with beyond :data:`SHARED_PROPERTIES`: the StandardAuthorizer
    with nothing allowed that no ACL allows, SCRAM-SHA-512 over TLS for clients (on each of
    ``sasl_listeners``: compose adds EXTERNAL for agencies outside its network), mutual TLS
    between nodes. ``keystore``: the node's PEM key and certificate chain; ``truststore``: the
    CA's PEM certificate. Holds no secret (SCRAM credentials live in the metadata log)."""
    internal, ctrl = INTERNAL.lower(), CONTROLLER.lower()
    sasl: dict[str, str] = {}
    for name in (n.lower() for n in sasl_listeners):
        sasl[f"listener.name.{name}.sasl.enabled.mechanisms"] = SCRAM_MECHANISM
        sasl[f"listener.name.{name}.{SCRAM_MECHANISM.lower()}.sasl.jaas.config"] = \
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    return {
        **sasl,
        "authorizer.class.name": STANDARD_AUTHORIZER,
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:{ADMIN_PRINCIPAL};User:CN={NODE_CN}",
        "inter.broker.listener.name": INTERNAL,
        "sasl.enabled.mechanisms": SCRAM_MECHANISM,
        f"listener.name.{internal}.ssl.client.auth": "required",
        f"listener.name.{ctrl}.ssl.client.auth": "required",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": keystore,
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": truststore,
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.enabled.protocols": "TLSv1.3,TLSv1.2",
    }


@dataclass(frozen=True)
class SecureNode:
    """A secured node's inter-broker port and TLS files (paths as the node sees them)."""

    internal_port: int
    keystore: Path
    truststore: Path


@dataclass(frozen=True)
class Listener:
    """One listener of a node: ``name://host:port``, spoken with ``protocol``."""

    name: str
    host: str
    port: int
    protocol: str = "PLAINTEXT"
    advertised: bool = True  # clients are told about it (the controller listener is not)

    def url(self) -> str:
        return f"{self.name}://{self.host}:{self.port}"


@dataclass(frozen=True)
class Voter:
    node_id: int
    host: str
    controller_port: int

    def spec(self) -> str:
        return f"{self.node_id}@{self.host}:{self.controller_port}"


@dataclass(frozen=True)
class KafkaNodeConfig:
    """Everything one node's ``server.properties`` is made from."""

    node_id: int
    host: str
    port: int  # the PLAINTEXT listener clients and the other brokers use
    controller_port: int
    voters: tuple[Voter, ...]
    log_dir: Path
    partitions: int = 3
    extra_listeners: tuple[Listener, ...] = ()
    overrides: tuple[tuple[str, str], ...] = ()  # last word, for tests (segment sizes, ...)
    secure: SecureNode | None = None  # SASL_SSL on ``port``, mutual TLS between nodes

    def listeners(self) -> tuple[Listener, ...]:
        if self.secure is not None:
            return (
                Listener(CLIENT, self.host, self.port, protocol="SASL_SSL"),
                Listener(INTERNAL, self.host, self.secure.internal_port, protocol="SSL"),
                Listener(CONTROLLER, self.host, self.controller_port, protocol="SSL",
                         advertised=False),
                *self.extra_listeners,
            )
        return (
            Listener(INTER_BROKER, self.host, self.port),
            Listener(CONTROLLER, self.host, self.controller_port, advertised=False),
            *self.extra_listeners,
        )


def node_properties(cfg: KafkaNodeConfig) -> dict[str, str]:
    """The complete ``server.properties`` of one node."""
    listeners = cfg.listeners()
    props = {
        **SHARED_PROPERTIES,
        **cluster_properties(nodes=len(cfg.voters), partitions=cfg.partitions),
        "node.id": str(cfg.node_id),
        "controller.quorum.voters": ",".join(v.spec() for v in cfg.voters),
        "listeners": ",".join(li.url() for li in listeners),
        "advertised.listeners": ",".join(li.url() for li in listeners if li.advertised),
        "listener.security.protocol.map": ",".join(f"{li.name}:{li.protocol}"
                                                   for li in listeners),
        "log.dirs": str(cfg.log_dir),
    }
    if cfg.secure is not None:
        sasl = tuple(li.name for li in listeners if li.protocol == "SASL_SSL")
        props.update(secure_properties(keystore=str(cfg.secure.keystore),
                                       truststore=str(cfg.secure.truststore),
                                       sasl_listeners=sasl))
    props.update(dict(cfg.overrides))
    return props


def render_properties(props: dict[str, str]) -> str:
    """``key=value`` lines; values are ours (no newlines), escaped as Java properties want."""
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\")
    return "".join(f"{k}={esc(v)}\n" for k, v in sorted(props.items()))


def compose_env_name(prop: str) -> str:
    """The apache/kafka image's variable for a property: ``log.dirs`` -> ``KAFKA_LOG_DIRS``
    (the image maps ``_`` to ``.``, ``__`` to ``_`` and ``___`` to ``-``)."""
    return "KAFKA_" + prop.replace("_", "__").replace("-", "___").replace(".", "_").upper()


def compose_property(env_name: str) -> str:
    """The inverse of :func:`compose_env_name`: ``KAFKA_LOG_DIRS`` -> ``log.dirs``."""
    body = env_name.removeprefix("KAFKA_").lower()
    return body.replace("___", "\0").replace("__", "\1").replace("_", ".") \
        .replace("\1", "_").replace("\0", "-")


LOG4J2_TEMPLATE = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""
"""The broker logs to a file beside its data, never to the console (it would fill the
supervisor's output)."""
