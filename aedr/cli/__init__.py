"""The ``aedr`` command line. Plugins add their own sub-commands through ``register_commands``.

Every score shown is "lower = belonging"; an image belongs to a model iff its score < threshold.

How a command reports and prints, built-in or a plugin's (``aedr zoo`` and ``aedr generate`` are
plugins' commands written this way):

- An error the user can fix (a bad argument, a missing file, an unknown name) is raised as
  :class:`CliError`, most simply with ``fail("one plain sentence")``. The ``aedr`` command prints it
  as one ``error: ...`` line on standard error and exits with status 2. The message is plain text,
  never rich markup: it is escaped (:func:`aedr.text.markup`), so paths and names show verbatim.
  The library errors :func:`user_errors` names (an unknown model name, an unreadable image, missing
  weights, an unwritable output) are reported the same way when a command lets one through. Any
  other exception is a bug and keeps its traceback. A command does not print its own error line,
  call ``sys.exit`` or raise ``typer.Exit`` for a user error.
- Results go to :data:`out` (standard output), messages and progress to :data:`err` (standard
  error): the process's two rich consoles, :func:`aedr.text.console`. User-provided text printed on
  them goes through :func:`aedr.text.markup`.

- Tables fit the console's width (a pipe: ``COLUMNS``, else 80): a listing gives a wide and a narrow
  layout to :func:`aedr.text.print_widest_fitting`, a table of file or model names folds them with
  :func:`aedr.text.names_folded_to_fit`, and long work shows :func:`aedr.text.progress_display`
  (through :func:`progress_bar`), which is one line per stage off a terminal.

A plugin's command imports them: ``from aedr.cli import err, fail, out``.
"""


from __future__ import annotations

from typing import Optional

import typer

from .shared import AedrGroup, CliError, app, batch_size_flag, err, fail, out, plugins, progress_bar, user_errors

__all__ = ["AedrGroup", "CliError", "app", "batch_size_flag", "build_app", "err", "fail", "main", "out", "progress_bar", "user_errors"]


# -- entry point ---------------------------------------------------------------------------------
def build_app() -> typer.Typer:
    """The root app with every plugin's commands mounted (once)."""
    from . import listing, scoring, cards, compat  # noqa: F401  (their commands register on the app, in this order)

    if not getattr(app, "_aedr_plugins_mounted", False):
        plugins().add_commands(app)
        app._aedr_plugins_mounted = True  # type: ignore[attr-defined]
    return app


def main(argv: Optional[list[str]] = None) -> None:
    build_app()(args=argv, prog_name="aedr")

