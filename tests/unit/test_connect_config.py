"""Connector configs: validation errors name file, field and why; secrets come from env vars."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from shulian.cli.main import cli
from shulian.connectors.config import load_connector_files
from shulian.connectors.sources.config import FileDropConfig, GatewayConfig, TableSourceConfig
from shulian.connectors.table import CONNECTORS
from shulian.embedded.net import free_port
from shulian.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "connectors" / "examples"

GATEWAY = """\
name: gw
type: http_gateway
agencies:
  psb:
    token_env: {env}
    datasets: [household_change]
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def issues(exc: pytest.ExceptionInfo[ConfigError]) -> list[tuple[str, str, str]]:
    return [(Path(i.file).name, i.field, i.why) for i in exc.value.issues]


def test_valid_gateway_loads_with_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_TOKEN_T1", "secret")
    [loaded] = load_connector_files([write(tmp_path, "gw.yaml", GATEWAY.format(env="GW_TOKEN_T1"))])
    assert isinstance(loaded.config, GatewayConfig)
    assert loaded.config.agencies["psb"].route("household_change") is not None


def test_missing_env_var_names_file_and_field(tmp_path: Path) -> None:
    p = write(tmp_path, "gw.yaml", GATEWAY.format(env="SHULIAN_TEST_SURELY_UNSET_1"))
    with pytest.raises(ConfigError) as exc:
        load_connector_files([p])
    assert issues(exc) == [("gw.yaml", "agencies.psb.token_env",
                            "environment variable SHULIAN_TEST_SURELY_UNSET_1 is not set")]
    # the secret is not needed just to validate the shape
    assert load_connector_files([p], check_env=False)


def test_unknown_field_and_wrong_type(tmp_path: Path) -> None:
    p = write(tmp_path, "drop.yaml", """\
name: d
type: file_drop
agency: psb
dataset: household_change
directory: in
chunk_lines: lots
colour: blue
""")
    with pytest.raises(ConfigError) as exc:
        load_connector_files([p])
    got = {(f, field): why for f, field, why in issues(exc)}
    assert got[("drop.yaml", "colour")] == "unknown field"
    assert "integer" in got[("drop.yaml", "chunk_lines")]
    assert "drop.yaml: colour: unknown field" in str(exc.value)


def test_unknown_type_missing_type_and_bad_yaml_all_reported(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "name: x\ntype: ftp\n")
    b = write(tmp_path, "b.yaml", "name: x\n")
    c = write(tmp_path, "c.yaml", "name: [unclosed\n")
    with pytest.raises(ConfigError) as exc:
        load_connector_files([a, b, c])
    got = issues(exc)
    assert got[0][:2] == ("a.yaml", "type") and "ftp" in got[0][2]
    assert "http_gateway" in got[0][2]
    assert got[1][:2] == ("b.yaml", "type")
    assert got[2][:2] == ("c.yaml", "<file>") and "line" in got[2][2]


def test_cross_field_rules(tmp_path: Path) -> None:
    both = write(tmp_path, "gw.yaml", """\
name: gw
type: http_gateway
agencies:
  psb: {token_env: A, token_sha256: "%s", datasets: [household_change]}
""" % ("0" * 64))
    ts = write(tmp_path, "t.yaml", """\
name: t
type: postgres_table
agency: psb
dataset: household_change
dsn_env: DSN
table: "hj.x; drop table y"
cursor_column: updated_at
cursor_kind: timestamp
state_file: s.json
""")
    no_pk = write(tmp_path, "t2.yaml", ts.read_text().replace('"hj.x; drop table y"', "hj.x"))
    with pytest.raises(ConfigError) as exc:
        load_connector_files([both, ts, no_pk], check_env=False)
    got = issues(exc)
    assert got[0][:2] == ("gw.yaml", "agencies.psb") and "exactly one" in got[0][2]
    assert got[1][:2] == ("t.yaml", "table") and "schema.table" in got[1][2]
    assert got[2][:2] == ("t2.yaml", "<root>") and "primary_key" in got[2][2]


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    p = write(sub, "drop.yaml", "name: d\ntype: file_drop\nagency: psb\n"
              "dataset: household_change\ndirectory: ../drop\n")
    [loaded] = load_connector_files([p])
    assert isinstance(loaded.config, FileDropConfig)
    assert loaded.config.directory == (tmp_path / "drop").resolve()
    assert loaded.config.state_path == (tmp_path / "drop" / ".shulian" / "d.json").resolve()


def test_duplicate_names_across_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_TOKEN_T2", "s")
    a = write(tmp_path, "a.yaml", GATEWAY.format(env="GW_TOKEN_T2"))
    b = write(tmp_path, "b.yaml", GATEWAY.format(env="GW_TOKEN_T2"))
    with pytest.raises(ConfigError) as exc:
        load_connector_files([a, b])
    assert issues(exc)[0][:2] == ("b.yaml", "name")


def test_source_examples_validate_and_have_a_class() -> None:
    files = sorted(EXAMPLES.glob("source-*.yaml"))
    assert len(files) == 4  # two gateways: the agencies' and a bank's verifying one
    loaded = load_connector_files(files, check_env=False)
    kinds = {type(c.config) for c in loaded}
    assert kinds == {GatewayConfig, FileDropConfig, TableSourceConfig}
    for c in loaded:
        assert c.type in CONNECTORS


def test_connect_check_cli_exit_codes(tmp_path: Path) -> None:
    good = write(tmp_path, "good.yaml", GATEWAY.format(env="SHULIAN_TEST_SURELY_UNSET_2"))
    runner = CliRunner()
    res = runner.invoke(cli, ["connect", "check", str(good)])
    assert res.exit_code == 2
    assert "good.yaml: agencies.psb.token_env" in res.output
    res = runner.invoke(cli, ["connect", "check", "--skip-env", str(good)])
    assert res.exit_code == 0, res.output
    assert "http_gateway" in res.output


def test_connect_run_reports_an_unreachable_broker(tmp_path: Path) -> None:
    """setup() fails before anything runs: a clear message and a non-zero exit."""
    (tmp_path / "in").mkdir()
    p = write(tmp_path, "drop.yaml", "name: d\ntype: file_drop\nagency: psb\n"
              "dataset: household_change\ndirectory: in\n")
    port = free_port()
    proc = subprocess.run(
        [sys.executable, "-c", "from shulian.cli.main import main; main()", "connect", "run",
         "--registry-url", f"http://127.0.0.1:{port}", "--bootstrap", f"127.0.0.1:{port}",
         str(p)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert f"error: no Kafka broker answered at 127.0.0.1:{port}" in proc.stderr


def test_examples_without_their_secrets_say_so_in_shulians_words() -> None:
    """Unset secrets and paths: one issue each naming file and field, no pydantic phrasing,
    and a hint to --skip-env; with --skip-env the same files pass."""
    with pytest.raises(ConfigError) as caught:
        load_connector_files(sorted(EXAMPLES.glob("*.yaml")), env={})
    text = str(caught.value)
    assert "Value error" not in text and "Input should" not in text
    assert "source-amr-filedrop.yaml: directory: environment variable SHULIAN_STATE_DIR is " \
           "not set" in text
    assert "source-gateway.yaml: agencies.psb.token_env: environment variable " \
           "PSB_GATEWAY_TOKEN is not set" in text
    assert caught.value.hint is not None and "--skip-env" in caught.value.hint
    assert text.rstrip().endswith(caught.value.hint)
    assert load_connector_files(sorted(EXAMPLES.glob("*.yaml")), env={}, check_env=False)
    res = CliRunner().invoke(cli, ["connect", "check", str(EXAMPLES / "source-gateway.yaml")],
                             env={"PSB_GATEWAY_TOKEN": ""})
    assert res.exit_code == 2 and "hint:" in res.output and "--skip-env" in res.output


def test_pydantic_errors_become_file_field_why() -> None:
    from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

    from shulian.validation import validation_issues

    class M(BaseModel):
        model_config = ConfigDict(extra="forbid")
        n: int = Field(ge=1)
        name: str = Field(pattern=r"^[a-z]+$")
        need: str
        v: str = "x"

        @field_validator("v")
        @classmethod
        def _v(cls, v: str) -> str:
            raise ValueError("environment variable X is not set")

    with pytest.raises(ValidationError) as caught:
        M.model_validate({"n": 0, "name": "A1", "v": "secret-value", "extra": 1})
    got = {i.field: i.why for i in validation_issues(caught.value, file="f.yaml")}
    assert got == {"n": "must be at least 1", "name": "must match the pattern ^[a-z]+$",
                   "need": "required, but missing",
                   "v": "environment variable X is not set", "extra": "unknown field"}
    assert all(i.file == "f.yaml" for i in validation_issues(caught.value, file="f.yaml"))


def test_every_table_entry_loads_and_names_its_own_type() -> None:
    """The one connector table: each type's config model carries that type, and its factory
    is a connector class (sources) or a BatchSink class (sinks)."""
    for kind, entry in CONNECTORS.items():
        assert entry.config.model_fields["type"].default == kind
        cls = entry.load()
        methods = (("setup", "start", "stop", "failure") if entry.role == "source"
                   else ("setup", "write_batch", "flush", "close"))
        for method in methods:
            assert callable(getattr(cls, method, None)), (kind, method)


def test_an_unknown_type_is_an_error_naming_file_and_field_not_the_kafka_bridge() -> None:
    from shulian.connectors.metrics import ConnectorMetrics
    from shulian.connectors.sinks.build import build_sink
    from shulian.connectors.sinks.config import FileSinkConfig
    from shulian.connectors.table import build_connector
    from shulian.settings import Settings

    class Odd(FileSinkConfig):
        type: str = "ftp"  # type: ignore[assignment]

    odd = Odd(name="odd", topics=("t",), directory="/tmp")
    with pytest.raises(ConfigError) as exc:
        build_sink(odd, file="sink-odd.yaml")
    assert issues(exc) == [("sink-odd.yaml", "type", "unknown sink connector type 'ftp'; "
                            "expected one of ['files', 'kafka_bridge', 'postgres', 'webhook']")]
    with pytest.raises(ConfigError) as exc:
        build_connector(odd, settings=Settings(), metrics=ConnectorMetrics.create(),
                        file="sink-odd.yaml")
    assert issues(exc)[0][:2] == ("sink-odd.yaml", "type")
    gateway = GatewayConfig.model_validate(
        {"name": "gw", "type": "http_gateway",
         "agencies": {"psb": {"token_env": "T", "datasets": ["household_change"]}}})
    with pytest.raises(ConfigError) as exc:  # a source type is no sink
        build_sink(gateway, file="gw.yaml")  # type: ignore[arg-type]
    assert issues(exc)[0][:2] == ("gw.yaml", "type")
