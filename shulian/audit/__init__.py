"""Audit and replay.

Pure parts (no Kafka imports):

- :mod:`shulian.audit.window`       TIME windows (re-exported from :mod:`shulian.chain.window`)
- :mod:`shulian.audit.check`        chain verification across partitions and completeness matching
- :mod:`shulian.audit.diff`         replayed decisions against audited ones
- :mod:`shulian.audit.report`       report rows (per consumer, dataset or record key)
- :mod:`shulian.audit.redeliver`    replay audit records and drill pacing

Edges (Kafka imported inside their functions):

- :mod:`shulian.audit.drill`        a drill: copy a window into a namespace, run a worker on it
- :mod:`shulian.audit.produce`      produce-and-wait for replay tooling
- :mod:`shulian.audit.progress`     rich progress lines on stderr, only on a terminal

The reader is :mod:`shulian.io.reader` (over the one tail reader, :mod:`shulian.io.tail`); the
commands are :mod:`shulian.cli.audit` and :mod:`shulian.cli.replay`.
"""
