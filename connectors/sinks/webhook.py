"""HTTP webhook sink: one signed JSON POST per batch, with an idempotency key.

Body: ``{"records": [...], "batch_id": "<connector>:<topic>:<partition>:<first>-<last>"}``;
each record is the consumer view (dates as ISO strings) plus ``_kafka_topic``,
``_kafka_partition``, ``_kafka_offset``; a tombstone is ``{"_record_key": k, "_deleted": true}``.
Headers: ``Idempotency-Key`` (= batch_id, the same for every retry of the batch),
``X-Shulian-Timestamp`` and ``X-Shulian-Signature`` (see :mod:`shulian.connectors.sinks.signature`).

2xx: delivered. 408, 429, 5xx, timeouts and connection errors: retried with backoff by the loop;
after ``retry.max_attempts`` the batch goes to the dead-letter topic. Any other 4xx: permanent,
dead-lettered at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from shulian.connectors.sinks.backoff import RetryPolicy
from shulian.connectors.sinks.config import WebhookSinkConfig
from shulian.connectors.sinks.failures import PermanentSinkError, RetryableSinkError
from shulian.connectors.sinks.jsonable import batch_body, batch_id
from shulian.connectors.sinks.records import SinkRecord, load_columns, record_key
from shulian.connectors.sinks.signature import IDEMPOTENCY_HEADER, signature_headers
from shulian.errors import SinkError
from shulian.log import get_logger

__all__ = ["WebhookSink", "webhook_records"]

log = get_logger("shulian.sinks.webhook")

_RETRYABLE_4XX = {408, 425, 429}


def webhook_records(records: Sequence[SinkRecord]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for r in records:
        if r.value is None:
            row: dict[str, Any] = {"_record_key": record_key(r), "_deleted": True}
        else:
            row = dict(r.value)
        row.update(load_columns(r))
        out.append(row)
    return out


class WebhookSink:
    def __init__(
        self, config: WebhookSinkConfig, *, secret: str | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.retry: RetryPolicy = config.retry
        self._secret = secret if secret is not None else config.secret().get_secret_value()
        self._client = client or httpx.Client(timeout=config.timeout_s)

    def setup(self) -> None:
        """The endpoint must answer HTTP at all (any status): a clear error when it does not."""
        try:
            self._client.request("HEAD", self.config.url, timeout=min(5.0, self.config.timeout_s))
        except httpx.HTTPError as exc:
            raise SinkError(f"sink {self.name}: webhook {self.config.url} is unreachable: "
                            f"{type(exc).__name__}: {exc}") from exc
        log.info("sink.webhook.ready", connector=self.name)

    def write_batch(self, records: Sequence[SinkRecord]) -> None:
        first, last = records[0], records[-1]
        bid = batch_id(connector=self.name, topic=first.topic, partition=first.partition,
                       first=first.offset, last=last.offset)
        body = batch_body(records=webhook_records(records), batch=bid)
        headers = {
            **self.config.headers,
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: bid,
            "X-Shulian-Batch-Id": bid,
            **signature_headers(body=body, secret=self._secret),
        }
        try:
            resp = self._client.post(self.config.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise RetryableSinkError(f"POST failed: {type(exc).__name__}: {exc}") from exc
        status = resp.status_code
        if 200 <= status < 300:
            log.debug("sink.webhook.delivered", connector=self.name, batch=bid,
                      records=len(records))
            return
        if status >= 500 or status in _RETRYABLE_4XX:
            raise RetryableSinkError(f"endpoint answered {status}")
        raise PermanentSinkError(f"endpoint refused the batch with {status}")

    def flush(self) -> None:
        """Nothing buffered: each batch is POSTed inside ``write_batch``."""

    def close(self) -> None:
        self._client.close()
