"""Kill -9 the chain worker while records flow: nothing lost, nothing twice.

Agencies publish ``amr/business_licence`` records (~1 % invalid) into a real chain
(``start_chain``: a ``shulian worker`` subprocess on the session broker and registry); a
PostgreSQL sink loop (connectors/sinks, in a thread) writes every egress topic of the dataset
into one table per consumer. The worker is SIGKILLed at spread points of the flow (by the
canonical topic's progress) and started again each time. Afterwards:

- every valid record is in each authorised consumer's table exactly once (by key), and the
  table holds exactly what the sharing list allows (entries, row filters, masked keys),
  computed independently by running the pure stages over the raw topic;
- every invalid record is in the dead-letter topic exactly once (by raw origin, and no
  duplicate messages);
- every (record, entry) is decided exactly once in the audit, and ``shulian audit verify``
  (run_verify: chains, completeness, digests) passes.

Egress duplicates (the same view re-sent after a crash, same key) are counted and reported:
they are harmless to the idempotent sinks. The test prints its figures.
"""

from __future__ import annotations

import pytest

from tests.fixtures.chain import StartChain
from tests.fixtures.flow import run_kill_scenario

pytestmark = [pytest.mark.integration]


@pytest.mark.both_engines
def test_kill9_once_small(start_chain: StartChain, pg_dsn: str, unique: str,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    figures = run_kill_scenario(start_chain, pg_dsn, unique, monkeypatch, records=5_000,
                                kills=1, timeout_s=120)
    assert figures["starts"] == 2


@pytest.mark.slow
def test_kill9_three_times_100k(start_chain: StartChain, pg_dsn: str, unique: str,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    figures = run_kill_scenario(start_chain, pg_dsn, unique, monkeypatch, records=100_000,
                                kills=3, timeout_s=300)
    assert figures["starts"] == 4
