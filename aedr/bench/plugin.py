"""Built-in plugin: mounts ``aedr bench`` and ``aedr leaderboard`` on the command line."""

from __future__ import annotations

from ..hookspecs import hookimpl


@hookimpl
def register_commands(cli):
    from .commands import MultiValueCommand, bench_command, leaderboard_command

    cli.command("bench", cls=MultiValueCommand)(bench_command)
    cli.command("leaderboard")(leaderboard_command)
