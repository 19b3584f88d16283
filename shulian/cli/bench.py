"""``shulian bench``: throughput, latency and memory of the chain next to two one-hop baselines.

The benchmark code lives in the repository's ``bench/`` package (not installed with the wheel);
this command runs it from a checkout.
"""

from __future__ import annotations

from pathlib import Path

import click

from shulian.cli.common import engine_option, friendly_errors


@click.command("bench")
@click.option("--records", type=click.IntRange(min=100), default=50_000,
              envvar="SHULIAN_BENCH_RECORDS",
              help="Raw records per throughput phase [env SHULIAN_BENCH_RECORDS, default 50000]")
@click.option("--seconds", type=click.FloatRange(min=1), default=15.0,
              envvar="SHULIAN_BENCH_SECONDS",
              help="Length of the latency phase [env SHULIAN_BENCH_SECONDS, default 15]")
@click.option("--latency-rate", type=click.FloatRange(min=1), default=1000.0,
              envvar="SHULIAN_BENCH_LATENCY_RATE",
              help="Offered load (raw records/s) of the latency phase "
                   "[env SHULIAN_BENCH_LATENCY_RATE, default 1000]")
@click.option("--runs", type=click.IntRange(min=0), default=3,
              envvar="SHULIAN_BENCH_RUNS",
              help="Runs of every phase; the summary gives medians (0: only --scale-out) "
                   "[env SHULIAN_BENCH_RUNS, default 3]")
@click.option("--soak-seconds", type=click.FloatRange(min=0), default=0.0,
              envvar="SHULIAN_BENCH_SOAK_SECONDS",
              help="After the last run, keep the offered load this long and record the "
                   "worker's RSS (300 for the 5-minute flatness check; 0 = no soak) "
                   "[env SHULIAN_BENCH_SOAK_SECONDS, default 0]")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, envvar="SHULIAN_BENCH_JSON",
              help="Write the full report here, e.g. bench/results/x.json "
                   "[env SHULIAN_BENCH_JSON]")
@click.option("--keep-logs", is_flag=True, envvar="SHULIAN_BENCH_KEEP_LOGS",
              help="Keep the temp directory with every child's log [env SHULIAN_BENCH_KEEP_LOGS]")
@click.option("--scale-out", type=click.IntRange(min=0), default=0,
              help="Also run the chain with 1 and with N worker processes on the same topics "
                   "(6 partitions), each on a fresh broker, with each process's CPU "
                   "[default 0: off]")
@engine_option
@friendly_errors
def bench(records: int, seconds: float, latency_rate: float, runs: int, soak_seconds: float,
          json_path: Path | None, keep_logs: bool, engine: str | None, scale_out: int) -> None:
    """Benchmark the chain on its own broker (Tansu, or Apache Kafka with --engine kafka) and
    registry.

    In one invocation, on the same generated records (reference workload: one dataset of 13
    fields, four list entries, audit on, 1% invalid): (1) limit: a plain confluent-kafka hop;
    (2) naive: the same hop as an untuned Faust agent; (3) tuned: the same hop run the
    chain's way (batches, raw bytes, the chain's producer); (4) chain: `shulian worker`, its
    CPU per record, then its latency at a fixed offered load on that loaded broker. Then the
    chain's latency on a fresh broker and worker, and the workers' RSS. Every run starts
    fresh brokers (the embedded broker slows down as its in-memory log grows).
    Prints a table; --json writes every figure. All children and ports are released on exit,
    failure or Ctrl-C.
    """
    try:
        from shulian.bench.report import table
        from shulian.bench.scaleout import scale_table
        from shulian.bench.suite import BenchParams, run_benchmark, write_json
    except ImportError as exc:
        raise click.ClickException(
            "the bench/ package is not importable: run from a source checkout") from exc

    params = BenchParams(records=records, runs=runs, latency_rate=latency_rate,
                         latency_seconds=seconds, soak_seconds=soak_seconds,
                         engine="kafka" if engine == "kafka" else "tansu", scale_out=scale_out)
    report = run_benchmark(params, echo=click.echo, keep_workdir=keep_logs)
    click.echo("")
    if report["runs"]:
        click.echo(table(report))
    if report["scale_out"]:
        click.echo(scale_table(report["scale_out"], params.engine))
    if json_path is not None:
        write_json(report, json_path)
        click.echo(f"report written to {json_path}")
