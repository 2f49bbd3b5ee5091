"""The ``aedr`` command line. Plugins add their own sub-commands through ``register_commands``."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="aedr",
    help="Which latent diffusion model made this image? Scores are 'lower = belonging' everywhere.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def build_app() -> typer.Typer:
    """The root app with every plugin's commands mounted."""
    from .plugins import get_plugins

    get_plugins().add_commands(app)
    return app


def main() -> None:
    build_app()()
