"""The shipped sink example configs validate into the sink models (discriminated on type)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest
import yaml
from pydantic import Field, TypeAdapter

from shulian.connectors.sinks.config import (
    FileSinkConfig,
    KafkaBridgeSinkConfig,
    PostgresSinkConfig,
    WebhookSinkConfig,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "connectors" / "examples"
Sink = TypeAdapter(Annotated[
    PostgresSinkConfig | WebhookSinkConfig | FileSinkConfig | KafkaBridgeSinkConfig,
    Field(discriminator="type"),
])


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("sink-*.yaml")), ids=lambda p: p.name)
def test_example_validates(path: Path) -> None:
    cfg = Sink.validate_python(yaml.safe_load(path.read_text()))
    assert cfg.topics and all(t.startswith("egress.") for t in cfg.topics)
    assert cfg.deadletter == f"deadletter._sink.{cfg.name}"


def test_examples_cover_every_sink_type() -> None:
    types = {yaml.safe_load(p.read_text())["type"] for p in EXAMPLES.glob("sink-*.yaml")}
    assert types == {"postgres", "webhook", "files", "kafka_bridge"}


def test_up_list_plans_on_an_empty_environment(tmp_path: Path) -> None:
    """What `shulian up` runs by default needs nothing from the machine but what it supplies."""
    from shulian.connectors.plan import plan_connectors
    from shulian.embedded.stack import connector_configs
    from shulian.settings import load_settings

    paths = connector_configs(load_settings(connectors_dir=EXAMPLES))
    assert [p.name for p in paths] == ["source-gateway.yaml", "source-amr-filedrop.yaml",
                                       "sink-tax-postgres.yaml"]
    tokens = iter(["t1", "t2", "t3", "t4"])
    plan = plan_connectors(paths, environ={"AMR_GATEWAY_TOKEN": "mine"}, state_dir=tmp_path,
                           stack_dsn="postgresql://x@127.0.0.1:1/db", gateway_host="127.0.0.1",
                           gateway_port=18088, make_token=lambda: next(tokens))
    assert plan.generated_tokens == {"PSB_GATEWAY_TOKEN": "t1", "HEALTH_TH_GATEWAY_TOKEN": "t2",
                                     "HEALTH_YX_GATEWAY_TOKEN": "t3"}  # a set one is kept
    assert "AMR_GATEWAY_TOKEN" not in plan.env
    assert plan.stack_dsn_vars == ("TAX_PG_DSN",)
    assert plan.env["TAX_PG_DSN"] == "postgresql://x@127.0.0.1:1/db"
    assert plan.env["SHULIAN_STATE_DIR"] == str(tmp_path)
    assert tmp_path / "drop" / "amr" in plan.directories
    assert plan.gateway_url == "http://127.0.0.1:18088/healthz"


def test_up_list_naming_a_missing_config_names_the_line(tmp_path: Path) -> None:
    from shulian.embedded.stack import connector_configs
    from shulian.errors import ConfigError
    from shulian.settings import load_settings

    listed = tmp_path / "up.list"
    listed.write_text("# comment\n\nnot-there.yaml\n")
    with pytest.raises(ConfigError) as exc:
        connector_configs(load_settings(connectors_dir=tmp_path))
    assert [(i.field, i.why) for i in exc.value.issues] == [
        ("line 3", "no such config file not-there.yaml")]
