"""``replay deliver --to-sink`` writes through the sink connector's own code
(connectors/sinks/direct.py): a config that is no sink or does not consume the topic is refused
before anything is read, and a record the sink loop would dead-letter (here: unsigned) stops the
write before anything reaches the sink."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shulian.chain.messages import InMessage
from shulian.connectors.sinks.direct import direct_sink
from shulian.errors import BrokerError, ConfigError
from shulian.settings import Settings

TOPIC = "egress.hrss.household_change"


def _config(tmp_path: Path, **fields: object) -> Path:
    path = tmp_path / "sink.yaml"
    path.write_text(yaml.safe_dump({"name": "hrss-files", "type": "files", "topics": [TOPIC],
                                    "directory": str(tmp_path / "out"), **fields}),
                    encoding="utf-8")
    return path


def test_a_sink_that_does_not_consume_the_topic_is_refused(tmp_path: Path) -> None:
    make = direct_sink(_config(tmp_path), Settings())
    with pytest.raises(ConfigError) as err:
        make("egress.tax.household_change")
    assert err.value.issues[0].field == "topics"
    assert make(TOPIC).target == "sink:hrss-files"


def test_a_source_config_is_no_sink(tmp_path: Path) -> None:
    path = tmp_path / "source.yaml"
    path.write_text(yaml.safe_dump({"name": "amr-drop", "type": "file_drop", "agency": "amr",
                                    "dataset": "business_licence",
                                    "directory": str(tmp_path / "in")}), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        direct_sink(path, Settings())(TOPIC)
    assert any(i.field == "type" for i in err.value.issues)


def test_an_unsigned_record_stops_the_write_before_the_sink_is_touched(tmp_path: Path) -> None:
    sink = direct_sink(_config(tmp_path), Settings(allow_dev_keys=True))(TOPIC)
    unsigned = InMessage(TOPIC, 0, 7, b"k", b"\x00\x00\x00\x00\x01\x02", 1_700_000_000_000, [])
    with pytest.raises(BrokerError, match=r"egress.hrss.household_change\[0\]@7.*bad_signature"):
        sink.write([unsigned])
    assert not (tmp_path / "out").exists()
