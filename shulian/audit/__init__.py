"""Audit and replay: pure parts (no Kafka imports).

- :mod:`shulian.audit.window`       TIME parsing and window resolution over (offset, timestamp)
- :mod:`shulian.audit.check`        chain verification across partitions and completeness matching
- :mod:`shulian.audit.diff`         replayed decisions against audited ones
- :mod:`shulian.audit.report`       report rows (per consumer, dataset or record key)
- :mod:`shulian.audit.redeliver`    replay audit records and drill pacing

The Kafka side is :mod:`shulian.io.reader`; the commands are :mod:`shulian.cli.audit` and
:mod:`shulian.cli.replay`.
"""
