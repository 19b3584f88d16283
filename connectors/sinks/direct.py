"""Writing records straight into a sink, without consuming them: ``shulian replay deliver
--to-sink``. The sink connector's own parts do it: the config loaded and checked like every
connector config (:mod:`shulian.connectors.config`), the sink built from the connector table
(:func:`~shulian.connectors.sinks.build.build_sink`), each record verified and decoded by
:func:`~shulian.connectors.sinks.loop.decode_record` as the loop does, and written with the sink's
``write_batch`` in batches of its ``batch_size``. A record the loop would dead-letter is an
error here: nothing is written."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from shulian.chain.messages import InMessage
from shulian.connectors.config import load_connector_files
from shulian.connectors.sinks.build import SinkConfig, build_sink, chain_keys
from shulian.connectors.sinks.loop import decode_record
from shulian.connectors.sinks.records import SinkRecord
from shulian.connectors.table import connector_type
from shulian.errors import BrokerError, ConfigError, ConfigIssue
from shulian.serde import SchemaCache
from shulian.settings import Settings

__all__ = ["DirectSink", "direct_sink"]

Progress = Callable[[int], None]


class DirectSink:
    """One sink of a connector config, written to directly (see the module)."""

    def __init__(self, config: SinkConfig, settings: Settings, *, file: str) -> None:
        self.config = config
        self.file = file
        self._settings = settings

    @property
    def target(self) -> str:
        """How the replay audit names this target: ``sink:<connector name>``."""
        return f"sink:{self.config.name}"

    def write(self, messages: Sequence[InMessage], progress: Progress | None = None) -> None:
        """Verify and decode every message as the sink loop does, then write them in order."""
        schemas = SchemaCache(self._settings.registry_url,
                              auth=self._settings.registry_auth_conf())
        keys = chain_keys(self._settings)
        records: list[SinkRecord] = []
        for m in messages:
            rec = decode_record(SinkRecord(m.topic, m.partition, m.offset, m.key, m.value,
                                           m.headers, m.timestamp_ms), schemas=schemas, keys=keys)
            if isinstance(rec, tuple):
                raise BrokerError(f"record {m.topic}[{m.partition}]@{m.offset} for sink "
                                  f"{self.config.name}: {rec[1].value}: {rec[2]}")
            records.append(rec)
        sink = build_sink(self.config, file=self.file)
        try:
            sink.setup()
            size = self.config.batch_size
            for i in range(0, len(records), size):
                sink.write_batch(records[i:i + size])
                if progress is not None:
                    progress(len(records[i:i + size]))
            sink.flush()
        finally:
            sink.close()


def direct_sink(config_path: Path, settings: Settings) -> Callable[[str], DirectSink]:
    """A factory for :class:`DirectSink` from a sink connector config file: called with the
    topic the records come from, it refuses (ConfigError naming the file) a config that is no
    sink or whose ``topics`` do not list it."""

    def make(topic: str) -> DirectSink:
        file = str(config_path)
        config = load_connector_files([config_path])[0].config
        connector_type(config, file=file, role="sink")
        if topic not in config.topics:
            raise ConfigError([ConfigIssue(file, "topics", f"the sink does not consume {topic}")])
        return DirectSink(config, settings, file=file)

    return make
