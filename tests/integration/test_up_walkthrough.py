"""The README walkthrough as a test: ``shulian up`` with its default connector set (gateway, file
drop, the tax bureau's PostgreSQL sink, the stack's own PostgreSQL), an agency POSTing through
the gateway with the token ``up`` printed, the consumer's rows appearing in PostgreSQL masked as
the sharing list says, a file dropped into the stack's drop folder updating a row, and a clean
stop (SIGTERM -> exit 0, nothing left running).
"""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shulian.embedded.net import free_port, wait_until
from tests.fixtures.up import DROPPED_CSV, LICENCES, licence_rows, running_up, stack_env

pytestmark = [pytest.mark.integration, pytest.mark.both_engines]


@pytest.fixture
def up_stack(tmp_path: Path, unique: str, engine: str
             ) -> Iterator[tuple[subprocess.Popen[bytes], Path, dict[str, int]]]:
    ports = {k: free_port() for k in ("broker", "registry", "gateway", "metrics", "postgres")}
    out = tmp_path / "up.out"
    args = [a for k, p in ports.items() for a in (f"--{k}-port", str(p))]
    args += ["--engine", engine]  # the session's engine; `up` starts its own broker
    # the secured Kafka stack (SCRAM, ACLs, TLS) takes longer to start on a busy machine
    with running_up(args, env=stack_env(unique), out=out, mark=unique, leftover_timeout_s=30,
                    ready_timeout_s=300 if engine == "kafka" else 90) as proc:
        yield proc, out, ports


def test_agency_publishes_through_the_gateway_and_the_consumer_receives_in_postgres(
    up_stack: tuple[subprocess.Popen[bytes], Path, dict[str, int]], unique: str
) -> None:
    proc, out, ports = up_stack
    text = out.read_text()
    tokens = dict(re.findall(r"^  ([A-Z_]+_GATEWAY_TOKEN)=(\S+)$", text, re.MULTILINE))
    assert set(tokens) == {"PSB_GATEWAY_TOKEN", "AMR_GATEWAY_TOKEN", "HEALTH_TH_GATEWAY_TOKEN",
                           "HEALTH_YX_GATEWAY_TOKEN"}
    assert text.count(tokens["AMR_GATEWAY_TOKEN"]) == 1, "a token is printed once, never logged"
    dsn = f"postgresql://postgres@127.0.0.1:{ports['postgres']}/postgres"
    assert dsn in text
    gateway = f"http://127.0.0.1:{ports['gateway']}"
    url = f"{gateway}/v1/agencies/amr/datasets/business_licence/records"

    # another agency's token is refused; the market regulator's own is accepted
    other = httpx.post(url, json=LICENCES, timeout=30,
                       headers={"Authorization": f"Bearer {tokens['PSB_GATEWAY_TOKEN']}"})
    assert other.status_code == 403
    reply = httpx.post(url, json=LICENCES, timeout=30,
                       headers={"Authorization": f"Bearer {tokens['AMR_GATEWAY_TOKEN']}",
                                "Idempotency-Key": f"walkthrough-{unique}"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["accepted"] == 2

    assert wait_until(lambda: len(licence_rows(dsn)) == 2, timeout_s=60, interval_s=0.2), \
        f"rows: {licence_rows(dsn)}"
    got = licence_rows(dsn)
    first, second = got["91440106MA59B8K2XT"], got["91440104MA5CQ1H7R5"]
    # harmonised onto the canonical elements
    assert first["enterprise_type"] == "1100" and second["enterprise_type"] == "1200"
    assert first["region"] == "440106" and second["region"] == "440104"
    assert first["registered_capital"] == 500 * 10_000 * 100  # 万元 -> fen
    assert str(second["established_on"]) == "2026-11-09"
    # masked as list entry amr-tax-licence says: legal_rep_id keyed hash, phone keep 3 + 4
    assert re.fullmatch(r"[0-9a-f]{64}", first["legal_rep_id"])
    assert "440106198503172237" not in str(first.values())
    assert first["phone"].startswith("020") and first["phone"].endswith("0001")
    assert "3888" not in first["phone"]
    assert second["phone"] is None
    assert "business_scope" not in first  # not in the entry's fields
    assert first["_entry_id"] == "amr-tax-licence"

    # the same licence dropped as a CSV file into the stack's drop folder: the row is updated
    state = Path(re.search(r"^  state\s+(\S+)$", text, re.MULTILINE).group(1))  # type: ignore[union-attr]
    drop = state / "drop" / "amr"
    (drop / "export.csv.part").write_text(DROPPED_CSV, encoding="utf-8")
    (drop / "export.csv.part").rename(drop / "export.csv")
    assert wait_until(
        lambda: licence_rows(dsn)["91440106MA59B8K2XT"]["registered_capital"] == 800 * 10_000 * 100,
        timeout_s=60, interval_s=0.2)
    assert (drop / "done" / "export.csv").exists()
    assert len(licence_rows(dsn)) == 2  # upserted by record key

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0
    final = out.read_text()
    assert "stack stopped" in final
    assert final.count(tokens["AMR_GATEWAY_TOKEN"]) == 1
    logs = Path(re.search(r"^logs in (\S+)$", final, re.MULTILINE).group(1))  # type: ignore[union-attr]
    for log in logs.glob("*.log"):
        assert tokens["AMR_GATEWAY_TOKEN"] not in log.read_text(errors="replace"), log
    # a run without --data-dir leaves no dropped CSV (personal data) behind, only its logs
    assert not state.exists() and not (drop / "done" / "export.csv").exists()
    assert logs.stat().st_mode & 0o777 == 0o700
    assert all(log.stat().st_mode & 0o777 == 0o600 for log in logs.glob("*.log"))
