"""The shipped sink example configs validate into the sink models (discriminated on type)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest
import yaml
from pydantic import Field, TypeAdapter

from connectors.sinks.config import (
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
    assert cfg.deadletter == f"deadletter.sink.{cfg.name}"


def test_examples_cover_every_sink_type() -> None:
    types = {yaml.safe_load(p.read_text())["type"] for p in EXAMPLES.glob("sink-*.yaml")}
    assert types == {"postgres", "webhook", "files", "kafka_bridge"}
