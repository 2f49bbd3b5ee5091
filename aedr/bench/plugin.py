"""Built-in plugin: the bench's metrics, its local and Ray executors, and the ``aedr bench`` and ``aedr
leaderboard`` commands, registered through the same hooks a third-party plugin uses."""

from __future__ import annotations

from ..hookspecs import hookimpl


@hookimpl
def register_metrics(register):
    from .metrics import BUILTIN_METRICS

    for metric in BUILTIN_METRICS:
        register(metric)


@hookimpl
def register_executors(register):
    from .execute import LocalExecutor
    from .ray_executor import RayExecutor  # imports no ray until the executor is built

    register(LocalExecutor)
    register(RayExecutor)


@hookimpl
def register_commands(cli):
    from .commands import MultiValueCommand, bench_command, leaderboard_command

    cli.command("bench", cls=MultiValueCommand)(bench_command)
    cli.command("leaderboard")(leaderboard_command)
