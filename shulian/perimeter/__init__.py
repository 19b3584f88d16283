"""The perimeter: identities, ACLs derived from the catalogue and the list, their
reconciliation with a cluster, TLS material (docs/SECURITY.md)."""
