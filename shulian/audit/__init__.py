"""Audit and replay.

Pure parts (no Kafka imports):

- :mod:`shulian.audit.window`       TIME windows (re-exported from :mod:`shulian.chain.window`)
- :mod:`shulian.audit.check`        chain verification across partitions and completeness matching
- :mod:`shulian.audit.diff`         replayed decisions against audited ones
- :mod:`shulian.audit.report`       report rows (per consumer, dataset or record key)
- :mod:`shulian.audit.redeliver`    replay audit records and drill pacing

Services (Kafka imported inside their functions), called by the CLI, the tests and the console:

- :mod:`shulian.audit.verifying`    ``audit verify``: which topics, reading them, the verdict
- :mod:`shulian.audit.reporting`    ``audit report``: rows with masks described
- :mod:`shulian.audit.replaying`    ``replay decisions``: re-decide a window, compare with the audit
- :mod:`shulian.audit.redelivering` ``replay deliver``: re-derive and re-send, audited
- :mod:`shulian.audit.drill`        a drill: copy a window into a namespace, run a worker on it
- :mod:`shulian.audit.deadletters`  dead letters read and filtered
- :mod:`shulian.audit.produce`      produce-and-wait for replay tooling
- :mod:`shulian.audit.progress`     rich progress lines on stderr, only on a terminal

The reader is :mod:`shulian.io.reader` (over the one tail reader, :mod:`shulian.io.tail`); the
commands, which parse and print only, are :mod:`shulian.cli.audit` and :mod:`shulian.cli.replay`.
"""
