"""Source connectors: HTTP ingest gateway, file drop, PostgreSQL table poll."""
