"""Commands that run a service: dev, master, region, worker."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType

import click

from ..config import WorkerConfig
from ..errors import InvalidRequestError
from ._common import (
    CliInputError,
    err,
    nats_auth_options,
    nats_config,
    nats_options,
    prefix_option,
    run,
    serve,
    service_logging,
    worker_options,
)


@click.command()
@click.argument("modules", nargs=-1)
@click.option(
    "--workers",
    type=click.IntRange(0, 64),
    default=2,
    show_default=True,
    help="Worker processes to start.",
)
@worker_options
@click.option("--demo", is_flag=True, help="Load tierq.demo and run its sample workflow.")
@click.option(
    "--nats",
    "nats_url",
    metavar="URL",
    help="Use this NATS server instead of starting an embedded one.",
)
@click.option(
    "--nats-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Port of the embedded nats-server [default: a free one].",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8000,
    show_default=True,
    help="HTTP port of the API and dashboard.",
)
@click.option(
    "--grpc-port",
    type=click.IntRange(1, 65535),
    default=50051,
    show_default=True,
    help="Port of the gRPC API.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=".tierq",
    show_default=True,
    help="Where the embedded server keeps its JetStream data and NATS credentials.",
)
@prefix_option
@click.option("--no-api", is_flag=True, help="Do not start the API and dashboard.")
@click.option(
    "--autoscale",
    is_flag=True,
    help="Scale the workers with the autoscale.* settings instead of running --workers.",
)
@click.option(
    "--sync-always",
    is_flag=True,
    help="Durable profile: fsync every write before acknowledging it.",
)
@nats_auth_options
@click.pass_context
def dev(
    ctx: click.Context,
    modules: tuple[str, ...],
    workers: int,
    concurrency: int,
    pool: str,
    demo: bool,
    nats_url: str | None,
    nats_port: int | None,
    port: int,
    grpc_port: int,
    data_dir: str,
    prefix: str,
    region: str,
    no_api: bool,
    autoscale: bool,
    sync_always: bool,
) -> None:
    """Run nats-server, master, region, API and workers on this machine.

    MODULES are the task modules the workers load (e.g. myapp.tasks).
    """
    if not modules and not demo:
        raise click.UsageError("give the task modules to run (tierq dev myapp.tasks) or --demo")
    service_logging(ctx)
    from ..dev import DevOptions, run_dev

    options = DevOptions(
        nats=nats_config(nats_url, prefix) if nats_url else None,
        modules=list(modules),
        workers=workers,
        concurrency=concurrency,
        pool=pool,
        demo=demo,
        nats_url=nats_url,
        data_dir=data_dir,
        nats_port=nats_port,
        api_port=port,
        grpc_port=grpc_port,
        no_api=no_api,
        sync_always=sync_always,
        prefix=prefix,
        region=region,
        autoscale=autoscale,
        announce=lambda line: err.print(line, markup=False),
    )
    run(run_dev(options))


@click.command()
@nats_options
@click.option("--holder", default=None, help="Identity in the leader lease [default: host:pid].")
@click.option(
    "--leader-lease",
    type=click.FloatRange(0.5, 300),
    default=2.0,
    show_default=True,
    help="Seconds a leader lease lasts unrenewed: a standby takes over about this long after "
    "the leader dies.",
)
@click.option(
    "--snapshot-every",
    type=click.IntRange(1000, 100_000_000),
    default=200_000,
    show_default=True,
    help="Events between snapshots (bounds the log a restarted master replays).",
)
@click.option(
    "--replicas",
    type=click.IntRange(1, 5),
    default=None,
    help="Replicas of tierq's streams and buckets [default: 3 when the NATS server is in a "
    "cluster, else 1].",
)
@click.pass_context
def master(
    ctx: click.Context,
    nats_url: str | None,
    prefix: str,
    holder: str | None,
    leader_lease: float,
    snapshot_every: int,
    replicas: int | None,
) -> None:
    """Run a master (the first one leads; more are standbys that keep their state warm)."""
    service_logging(ctx)
    ctx.meta["tierq.prefix"] = prefix
    from ..config import MasterConfig
    from ..master import run_master

    config = MasterConfig(
        nats=nats_config(nats_url, prefix).for_role("master"),
        holder=holder,
        leader_lease_seconds=leader_lease,
        snapshot_every=snapshot_every,
        replicas=replicas,
    )
    serve(lambda: run_master(config))


@click.command()
@nats_options
@click.option("--name", default="default", show_default=True, help="Region name.")
@click.option(
    "--labels",
    multiple=True,
    metavar="LABEL[,LABEL]",
    help="Labels this region offers (e.g. gpu); repeat or comma-separate.",
)
@click.option(
    "--worker-lease",
    type=click.FloatRange(0.5, 3600),
    default=10.0,
    show_default=True,
    help="Seconds without a heartbeat before a worker is lost.",
)
@click.option(
    "--prefetch",
    type=click.IntRange(0, 100_000),
    default=0,
    show_default=True,
    help="Tasks to hold beyond the workers' free slots (hides the lease round trip).",
)
@click.pass_context
def region(
    ctx: click.Context,
    nats_url: str | None,
    prefix: str,
    name: str,
    labels: tuple[str, ...],
    worker_lease: float,
    prefetch: int,
) -> None:
    """Run a regional scheduler."""
    service_logging(ctx)
    ctx.meta["tierq.prefix"] = prefix
    from ..config import RegionConfig
    from ..region import run_region

    flat = tuple(label.strip() for item in labels for label in item.split(",") if label.strip())
    config = RegionConfig(
        nats=nats_config(nats_url, prefix).for_role("region", name),
        name=name,
        labels=flat,
        worker_lease_seconds=worker_lease,
        prefetch=prefetch,
    )
    serve(lambda: run_region(config))


@click.command()
@click.argument("modules", nargs=-1, required=True)
@nats_options
@worker_options
@click.option(
    "--drain-grace",
    type=click.FloatRange(0, 86_400),
    default=30.0,
    show_default=True,
    help="On SIGTERM, seconds running tasks get to finish.",
)
@click.option("--worker-id", default=None, help="Worker id [default: host-pid-random].")
@click.pass_context
def worker(
    ctx: click.Context,
    modules: tuple[str, ...],
    nats_url: str | None,
    prefix: str,
    region: str,
    concurrency: int,
    pool: str,
    drain_grace: float,
    worker_id: str | None,
) -> None:
    """Run a worker for the tasks declared in MODULES (e.g. myapp.tasks).

    SIGTERM or Ctrl-C drains: nothing new is taken, running tasks get --drain-grace
    seconds, then the worker exits 0. A second signal cancels what still runs.
    """
    service_logging(ctx)
    ctx.meta["tierq.prefix"] = prefix
    # Until the worker's own handlers are in place (after loading the modules and
    # connecting), a SIGTERM stops it cleanly: it holds no attempt yet.
    signal.signal(signal.SIGTERM, _exit_0)
    from ..worker.main import serve

    config = WorkerConfig(
        nats=nats_config(nats_url, prefix).for_role("worker", region),
        modules=modules,
        region=region,
        concurrency=concurrency,
        pool=pool,
        worker_id=worker_id,
        drain_grace=drain_grace,
    )
    stats = run(serve(config))
    if stats.stuck_threads:
        # A sync task that ignored its cancel flag still holds its thread, and the interpreter
        # would join it at exit; its attempt was already reported, so leave without it.
        logging.getLogger("tierq.worker").warning(
            "%d task threads still busy after drain; exiting without them", stats.stuck_threads
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


@click.command()
@nats_options
@click.option("--host", default="127.0.0.1", show_default=True, help="REST listen address.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--grpc-port",
    type=click.IntRange(0, 65535),
    default=50051,
    show_default=True,
    help="gRPC port.",
)
@click.option("--no-grpc", is_flag=True, help="Serve REST only.")
@click.option(
    "--tokens-file",
    type=click.Path(dir_okay=False, exists=True),
    envvar="TIERQ_API_TOKENS_FILE",
    help="JSON file of bearer tokens with roles (see docs/api.md).",
)
@click.option(
    "--insecure", is_flag=True, help="Allow serving without tokens on a non-loopback address."
)
@click.option("--enable-shell", is_flag=True, help="Run the built-in shell task type here.")
@click.option(
    "--keda-open",
    is_flag=True,
    help="KEDA's external scaler (gRPC) answers without a token: it tells only queue depths.",
)
@click.option(
    "--allowed-host",
    "allowed_host",
    multiple=True,
    envvar="TIERQ_API_ALLOWED_HOSTS",
    help="A host name the API answers for (repeat; behind a proxy: its public name) "
    "[env TIERQ_API_ALLOWED_HOSTS, space-separated; default: loopback names on loopback].",
)
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True), default=None)
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True), default=None)
@click.pass_context
def api(
    ctx: click.Context,
    nats_url: str | None,
    prefix: str,
    host: str,
    port: int,
    grpc_port: int,
    no_grpc: bool,
    tokens_file: str | None,
    insecure: bool,
    enable_shell: bool,
    keda_open: bool,
    allowed_host: tuple[str, ...],
    tls_cert: str | None,
    tls_key: str | None,
) -> None:
    """Run the REST and gRPC API with the dashboard (stateless; run as many as you like)."""
    service_logging(ctx)
    ctx.meta["tierq.prefix"] = prefix
    from ..api.config import ApiConfig
    from ..api.server import run_api
    from ..dashboard import install

    config = ApiConfig(
        nats=nats_config(nats_url, prefix).for_role("api"),
        host=host,
        port=port,
        grpc_port=None if no_grpc else grpc_port,
        tokens_file=tokens_file,
        tokens=os.environ.get("TIERQ_API_TOKENS"),
        insecure=insecure,
        enable_shell=enable_shell,
        keda_open=keda_open,
        allowed_hosts=tuple(allowed_host),
        shell_key=os.environ.get("TIERQ_SHELL_KEY") or None,
        tls_cert=tls_cert,
        tls_key=tls_key,
    )
    serve(lambda: run_api(config, extend=install))


@click.command("nats-users")
@click.argument("credentials", type=click.Path(dir_okay=False))
@click.option(
    "--prefix", envvar="TIERQ_PREFIX", default="tierq", show_default=True, help="Subject prefix."
)
@click.option(
    "--region",
    "regions",
    multiple=True,
    default=("default",),
    show_default=True,
    help="A region to make region and worker users for (repeat for several).",
)
@click.option(
    "--leaf",
    "leaf_region",
    default=None,
    help="Print instead the config of a leaf node serving this region (needs --hub).",
)
@click.option(
    "--hub",
    default=None,
    help="With --leaf: the hub's leaf-node URL, e.g. nats-leaf://hub.example:7422.",
)
def nats_users(
    credentials: str,
    prefix: str,
    regions: tuple[str, ...],
    leaf_region: str | None,
    hub: str | None,
) -> None:
    """Print nats-server's `authorization` block for one NATS user per role.

    CREDENTIALS is the tierq credentials file (JSON, mode 0600): read if it exists, else
    written with new random passwords. Give each process the file (or only its role's
    user) with --nats-credentials; paste the output into the server's config.

    With --leaf REGION --hub URL it prints the config of a leaf node for REGION instead: that
    region's region and worker users, and the link to the hub as the region's leaf user,
    which the hub allows only that region's traffic.
    """
    from ..engine import NatsUsers, authorization_config, leaf_config

    if leaf_region is not None and hub is None:
        raise CliInputError("--leaf needs --hub, the hub's leaf-node URL (nats-leaf://host:port)")
    wanted = regions if leaf_region is None else (leaf_region,)
    path = Path(credentials)
    if path.exists():
        users = NatsUsers.load(path)
        completed = users.complete()
        if completed is not users:
            new = sorted({u.user for u in completed.users} - {u.user for u in users.users})
            completed.save(path)
            users = completed
            err.print(f"added users to {credentials}: {', '.join(new)}", markup=False)
        missing = [r for r in wanted if users.find("worker", r) is None]
        if users.prefix != prefix or missing:
            raise CliInputError(
                f"{credentials} is for prefix {users.prefix!r} and regions "
                f"{sorted({u.region for u in users.users if u.region})}; remove it to start over"
            )
    else:
        users = NatsUsers.generate(prefix, regions=wanted)
        users.save(path)
        err.print(f"wrote {credentials} (mode 0600): keep it private", markup=False)
    if leaf_region is None or hub is None:
        click.echo(authorization_config(users), nl=False)
        return
    try:
        click.echo(leaf_config(users, leaf_region, hub), nl=False)
    except InvalidRequestError as exc:
        raise CliInputError(exc.message) from exc


def _exit_0(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)
