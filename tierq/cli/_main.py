"""The ``tierq`` command group."""

from __future__ import annotations

import click

from ._admin import priority, regions, retry, submit_workflow, workers
from ._autoscale import autoscale
from ._common import TierqGroup
from ._schedules import schedules
from ._services import api, dev, master, nats_users, region, worker
from ._settings import settings
from ._tasks import cancel, status, submit, tasks, workflows


@click.group(cls=TierqGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default=None,
    help="Log level (services default to info, other commands to warning).",
)
@click.version_option(package_name="tierq", message="tierq %(version)s")
@click.pass_context
def main(ctx: click.Context, log_level: str | None) -> None:
    """tierq: a distributed task scheduler for Python.

    \b
    Quick start:
      tierq dev --demo                run everything locally with a sample workflow
      tierq dev myapp.tasks           ... with your own tasks
      tierq submit myapp.tasks.add --args '[1, 2]' --wait
    """
    ctx.ensure_object(dict)
    ctx.obj["log_level"] = log_level


for command in (
    dev,
    master,
    region,
    worker,
    autoscale,
    api,
    nats_users,
    submit,
    status,
    tasks,
    workflows,
    cancel,
    retry,
    priority,
    regions,
    workers,
    submit_workflow,
    schedules,
    settings,
):
    main.add_command(command)
