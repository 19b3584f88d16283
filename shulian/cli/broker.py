"""``shulian broker``: the embedded Kafka-compatible broker, or a real Apache Kafka."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click

from shulian.cli.common import engine_option, friendly_errors, settings_from


@click.command("broker")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="SHULIAN_BROKER_HOST",
              help="Address to listen on [env SHULIAN_BROKER_HOST]")
@click.option("--port", type=int, default=None, envvar="SHULIAN_BROKER_PORT",
              help="Port to listen on [env SHULIAN_BROKER_PORT, default 9092]")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              envvar="SHULIAN_DATA_DIR",
              help="Keep data on disk so it survives a restart (tansu: SeaweedFS S3 under DIR; "
                   "kafka: log dirs under DIR/kafka); without it data is in memory (kafka: a "
                   "temp folder) [env SHULIAN_DATA_DIR]")
@engine_option
@click.option("--nodes", type=click.IntRange(1, 9), default=1, show_default=True,
              help="kafka engine: nodes of a local cluster (each a broker and a controller "
                   "voter, on its own ports); node 1 listens on --port")
@click.option("--secure", is_flag=True, default=False,
              help="kafka engine: SASL_SSL (SCRAM-SHA-512) for every client, mutual TLS "
                   "between nodes, ACLs enforced (nothing allowed without one); TLS material "
                   "under DIR/kafka/tls, the admin's secret in --admin-secret-file "
                   "(docs/SECURITY.md)")
@click.option("--admin-secret-file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, envvar="SHULIAN_KAFKA_ADMIN_SECRET_FILE",
              help="with --secure: the super user `admin`'s SCRAM secret (first line, mode "
                   "0600); made with a random secret when missing [default DIR/kafka/"
                   "credentials/admin; env SHULIAN_KAFKA_ADMIN_SECRET_FILE]")
@click.pass_context
@friendly_errors
def broker(ctx: click.Context, host: str, port: int | None, data_dir: Path | None,
           engine: str | None, nodes: int, secure: bool, admin_secret_file: Path | None
           ) -> None:
    """Run the broker until Ctrl-C or SIGTERM: Tansu (default) or Apache Kafka.

    Reports ready only once the broker answers metadata (kafka: once every node is listed).
    Tansu with --data-dir first starts SeaweedFS (S3, bound to 127.0.0.1, data under DIR);
    Kafka keeps its log dirs under DIR/kafka, else in a temp folder removed at stop.
    """
    from shulian.embedded.broker import EmbeddedBroker
    from shulian.embedded.kafka import KafkaCluster

    settings = settings_from(ctx, broker_port=port, data_dir=data_dir, broker_engine=engine)
    if settings.broker_engine != "kafka" and nodes != 1:
        raise click.UsageError("--nodes needs --engine kafka (Tansu runs one broker)")
    if settings.broker_engine != "kafka" and (secure or admin_secret_file is not None):
        raise click.UsageError("--secure needs --engine kafka (Tansu enforces no ACLs)")
    eb: EmbeddedBroker | KafkaCluster
    if settings.broker_engine == "kafka":
        eb = KafkaCluster(host=host, port=settings.broker_port, nodes=nodes,
                          data_dir=None if settings.data_dir is None
                          else settings.data_dir / "kafka",
                          secure=secure, admin_secret_file=admin_secret_file)
    else:
        eb = EmbeddedBroker(host=host, port=settings.broker_port, data_dir=settings.data_dir)
    stop = threading.Event()
    starting = True

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()
        if starting:  # abort a start in progress; start() cleans up what it began
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        eb.start()
    except KeyboardInterrupt:
        click.echo("broker: stopped during start", err=True)
        return
    starting = False
    if settings.broker_engine == "kafka":
        where = f"data in {eb.log_dir}" if settings.data_dir else "temporary data"
        mode = f"Apache Kafka, {nodes} node(s), {where}"
        if isinstance(eb, KafkaCluster) and eb.security is not None:
            mode += (f", SASL_SSL/SCRAM-SHA-512, CA {eb.security.ca_file}, admin "
                     f"`{eb.security.admin}` with the secret in {eb.security.admin_secret_file}")
    else:
        mode = f"durable, data in {settings.data_dir}" if settings.data_dir else "memory"
    click.echo(f"broker ready: bootstrap servers {eb.bootstrap} ({mode}); logs in {eb.log_dir}",
               err=False)
    try:
        while not stop.wait(0.5):
            if not eb.alive():
                raise click.ClickException(
                    f"the broker exited unexpectedly; see the logs in {eb.log_dir}")
    finally:
        died = not eb.alive()
        eb.stop(keep_logs=died)  # a temporary log folder goes, unless it explains a death
        click.echo("broker stopped" + (f"; logs kept in {eb.log_dir}" if died else ""),
                   err=True)
