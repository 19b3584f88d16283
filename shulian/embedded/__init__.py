"""Embedded parts for a developer machine and CI: Tansu, SeaweedFS, the stack supervisor."""
