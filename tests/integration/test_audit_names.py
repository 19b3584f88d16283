"""No false "OK" (issue 22 part 4), on the real broker: misspelt topics, datasets and
consumers are refused with exit 2 naming the nearest known ones, nothing is created by
reading, and a verification that read nothing says so and fails."""

from __future__ import annotations

from click.testing import CliRunner

from shulian.audit.names import existing_topics
from shulian.audit.verifying import Topics, run_verify
from shulian.audit.window import Window
from shulian.cli.main import cli
from shulian.io.kafka import TopicSpec, admin_client, ensure_topics
from shulian.io.reader import read_topics
from shulian.settings import Settings


def _run(args: list[str]) -> tuple[int, str]:
    res = CliRunner().invoke(cli, args, env={"COLUMNS": "200"})
    return res.exit_code, res.output


def test_misspelt_audit_topic_is_refused_and_not_created(kafka_settings: Settings,
                                                        unique: str) -> None:
    real = f"audit.business_licence.{unique}"
    ensure_topics(admin_client(kafka_settings), [TopicSpec(real, 1)])
    typo = f"audit.business_license.{unique}"
    code, out = _run(["audit", "verify", "--bootstrap", kafka_settings.bootstrap_servers,
                      "--audit-topic", typo, "--no-digests"])
    assert code == 2, out
    assert f"unknown topic {typo!r}" in out and repr(real) in out  # the nearest is named
    assert "OK" not in out
    # reading a missing topic neither fails nor creates it
    assert read_topics(kafka_settings, [typo]) == {}
    assert typo not in existing_topics(kafka_settings)


def test_unknown_consumer_and_dataset_are_refused(kafka_settings: Settings,
                                                  unique: str) -> None:
    boot = ["--bootstrap", kafka_settings.bootstrap_servers]
    code, out = _run(["audit", "report", *boot, "--consumer", "taxx"])
    assert code == 2 and "unknown consumer agency 'taxx'" in out and "'tax'" in out, out
    code, out = _run(["audit", "report", *boot, "--dataset", "business_license"])
    assert code == 2 and "'business_licence'" in out, out
    code, out = _run(["replay", "decisions", *boot, "--from", "-1h", "--to", "now",
                      "--dataset", "household_chnge"])
    assert code == 2 and "'household_change'" in out, out
    before = existing_topics(kafka_settings)
    ns = f"n{unique}"
    code, out = _run(["replay", "deliver", *boot, "--from", "-1h", "--to", "now",
                      "--namespace", ns, "--consumer", "tax", "--dataset", "business_license"])
    assert code == 2 and "'business_licence'" in out, out
    code, out = _run(["replay", "deliver", *boot, "--from", "-1h", "--to", "now",
                      "--namespace", ns, "--consumer", "health_th",
                      "--dataset", "business_licence"])
    assert code == 2 and "no list version delivers" in out, out
    created = {t for t in existing_topics(kafka_settings) - before if ns in t}
    assert not created, created


def test_a_verification_that_read_nothing_fails(kafka_settings: Settings, unique: str) -> None:
    empty = f"audit.empty.{unique}"
    ensure_topics(admin_client(kafka_settings), [TopicSpec(empty, 1)])
    result = run_verify(kafka_settings, Topics((empty,), (), ()), Window())
    assert result.read_nothing and not result.ok and not result.breaks
    code, out = _run(["audit", "verify", "--bootstrap", kafka_settings.bootstrap_servers,
                      "--audit-topic", empty, "--no-digests"])
    assert code == 3 and "NOTHING VERIFIED" in out and "OK:" not in out, out
    code, out = _run(["audit", "verify", "--bootstrap", kafka_settings.bootstrap_servers,
                      "--namespace", f"nothing{unique}", "--no-digests"])
    assert code == 3 and "NOTHING VERIFIED" in out, out
