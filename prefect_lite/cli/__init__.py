"""The ``prefect-lite`` command line. One module per noun; known errors are one line."""

from __future__ import annotations

import sys

import click

from prefect_lite import __version__
from prefect_lite.cli._errors import run_cli


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="prefect-lite")
def cli() -> None:
    """prefect-lite: flows, deployments, schedules and worker pools on Redis."""


def _register() -> None:
    from prefect_lite.cli import config, flow_run, server
    from prefect_lite.cli.api_key import api_key
    from prefect_lite.cli.block import block
    from prefect_lite.cli.deploy import deploy, init
    from prefect_lite.cli.deployment import deployment
    from prefect_lite.cli.scheduler import scheduler
    from prefect_lite.cli.variable import variable
    from prefect_lite.cli.work_pool import work_pool
    from prefect_lite.cli.work_queue import work_queue
    from prefect_lite.cli.worker import worker

    cli.add_command(api_key)
    cli.add_command(config.config)
    cli.add_command(flow_run.flow_run)
    cli.add_command(server.server)
    cli.add_command(block)
    cli.add_command(deploy)
    cli.add_command(deployment)
    cli.add_command(init)
    cli.add_command(scheduler)
    cli.add_command(variable)
    cli.add_command(work_pool)
    cli.add_command(work_queue)
    cli.add_command(worker)


_register()


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_cli(cli, argv))
