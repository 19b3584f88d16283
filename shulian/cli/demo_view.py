"""The demo's tables: agencies and consumers by their catalogue names, reason codes with a
legend in words, wire garbage broken down, headers that fit 80 columns."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from shulian.logic.reasons import legend

if TYPE_CHECKING:
    from shulian.catalog.models import Catalog
    from shulian.io.publish import PublishTally
    from shulian.scenario import Measured


def agency_label(catalog: Catalog, agency: str) -> str:
    found = catalog.agencies.get(agency)  # type: ignore[call-overload]
    return agency if found is None else f"{found.name} ({agency})"


def _legend(console: Console, codes: Iterable[str]) -> None:
    for code, words in legend(codes):
        console.print(f"  {code}: {words.zh}\n    {words.en}", highlight=False)


def render(console: Console, catalog: Catalog, tally: PublishTally, got: Measured) -> None:
    """Print the published, decided and dead-lettered tables with their legends."""
    pub = Table(title="Published by agencies (Avro, confluent-kafka serializer)")
    for col in ("agency", "dataset", "valid", "invalid", "garbage"):
        pub.add_column(col, justify="right" if col in ("valid", "invalid", "garbage")
                       else "left", overflow="fold")
    pairs = sorted(set(tally.valid) | set(tally.invalid) | set(tally.garbage))
    for pair in pairs:
        pub.add_row(agency_label(catalog, pair[0]), pair[1], str(tally.valid[pair]),
                    str(tally.invalid[pair]), str(tally.garbage[pair]))
    console.print(pub)
    console.print("  invalid: fails a data-element check on purpose\n"
                  "  garbage: not Avro at all, sent on purpose:", highlight=False)
    for (kind, reason), n in sorted(tally.garbage_kinds.items()):
        console.print(f"    {n} x {kind} (must be dead-lettered as {reason})", highlight=False)

    sl = catalog.current_list
    delivered = Counter((r["consumer"], r["dataset"]) for r in got.decisions
                        if r["decision"] == "deliver")
    withheld = Counter((r["consumer"], r["dataset"], r["reason"]) for r in got.decisions
                       if r["decision"] == "withhold")
    out = Table(title=f"Decisions under sharing list v{sl.version} (from the audit log)")
    for col in ("consumer", "dataset", "delivered", "withheld (reason)"):
        out.add_column(col, justify="right" if col == "delivered" else "left",
                       overflow="fold")
    for consumer, dataset in sorted({(r["consumer"], r["dataset"]) for r in got.decisions}):
        reasons = ", ".join(f"{n} {reason}" for (c, d, reason), n in sorted(withheld.items())
                            if (c, d) == (consumer, dataset))
        out.add_row(agency_label(catalog, consumer), dataset,
                    str(delivered[(consumer, dataset)]), reasons or "-")
    console.print(out)
    _legend(console, (str(r) for (_, _, r) in withheld))

    by_reason = Counter(d.reason for d in got.dead)
    garbage_by_reason: Counter[str] = Counter()
    for (_, reason), n in tally.garbage_kinds.items():
        garbage_by_reason[reason] += n
    dlt = Table(title="Dead letters by reason (original bytes kept)")
    for col in ("reason", "records", "of which garbage"):
        dlt.add_column(col, justify="left" if col == "reason" else "right")
    for reason, n in sorted(by_reason.items()):
        dlt.add_row(reason, str(n), str(garbage_by_reason[reason]))
    console.print(dlt)
    _legend(console, by_reason)
    fields = Counter(d.field for d in got.dead if d.field)
    if fields:
        console.print("  fields named: " + ", ".join(f"{f} {n}" for f, n in
                                                      sorted(fields.items())),
                      highlight=False)
    console.print("  details: shulian deadletters (times, fields, checks in words)",
                  highlight=False)
    console.print(f"audit: {len(got.decisions)} decisions in {got.partitions} hash-chained "
                  f"partitions, {got.breaks} breaks", highlight=False)
