"""``tierq autoscale``: run an autoscaler for one region's workers."""

from __future__ import annotations

from pathlib import Path

import click

from ._common import nats_config, nats_options, serve, service_logging, worker_options


@click.command()
@click.argument("modules", nargs=-1, required=True)
@nats_options
@worker_options
@click.option(
    "--provider",
    type=click.Choice(["local"]),
    default="local",
    show_default=True,
    help="Who runs the workers: local processes on this host. (On Kubernetes, KEDA does, "
    "through the API's external scaler.)",
)
@click.option(
    "--drain-grace",
    type=click.FloatRange(0, 86_400),
    default=30.0,
    show_default=True,
    help="Seconds a drained worker's running tasks get to finish.",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    default=".tierq/autoscale",
    show_default=True,
    help="Where the workers' pid files are kept (a restarted autoscaler finds them there).",
)
@click.option(
    "--interval",
    type=click.FloatRange(0.1, 600),
    default=1.0,
    show_default=True,
    help="Seconds between two checks.",
)
@click.option(
    "--drain-seconds",
    type=click.FloatRange(0.1, 86_400),
    default=10.0,
    show_default=True,
    help="Size the pool to drain what waits within this many seconds.",
)
@click.option(
    "--keep-workers",
    is_flag=True,
    help="On exit, leave the workers running (the next run finds them again).",
)
@click.pass_context
def autoscale(
    ctx: click.Context,
    modules: tuple[str, ...],
    nats_url: str | None,
    prefix: str,
    region: str,
    concurrency: int,
    pool: str,
    provider: str,
    drain_grace: float,
    state_dir: str,
    interval: float,
    drain_seconds: float,
    keep_workers: bool,
) -> None:
    """Scale the workers of MODULES in a region with the autoscale settings.

    The settings (autoscale.min_workers, max_workers, target_utilisation, cooldown; the
    region's entry in autoscale.regions; the entries in autoscale.task_types of the task
    types of MODULES) are read from the master at every check: change them with
    `tierq settings set`, the API (PUT /v1/settings) or the dashboard's settings page.
    Ctrl-C or SIGTERM drains the workers and exits (unless --keep-workers).
    """
    service_logging(ctx)
    ctx.meta["tierq.prefix"] = prefix
    from ..autoscale import AutoscaleConfig, run_autoscaler

    config = AutoscaleConfig(
        nats=nats_config(nats_url, prefix),
        modules=modules,
        region=region,
        provider=provider,
        concurrency=concurrency,
        pool=pool,
        drain_grace=drain_grace,
        state_dir=str(Path(state_dir)),
        interval=interval,
        drain_seconds=drain_seconds,
        keep_workers=keep_workers,
    )
    serve(lambda: run_autoscaler(config))
