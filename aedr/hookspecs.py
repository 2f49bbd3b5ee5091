"""The hooks a plugin implements. A plugin is a module with one or more of these functions,
decorated with ``@aedr.hookimpl`` and listed under the ``aedr`` entry-point group."""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("aedr")
hookimpl = pluggy.HookimplMarker("aedr")


@hookspec
def register_models(register):
    """Call ``register(model)`` once for each :class:`aedr.ModelPlugin` instance the plugin provides."""


@hookspec
def register_methods(register):
    """Call ``register(method_class)`` once for each :class:`aedr.Method` subclass the plugin provides."""


@hookspec
def register_datasets(register):
    """Call ``register(dataset)`` once for each :class:`aedr.ImageSet` (named image collection, e.g.
    real photographs to evaluate against) the plugin provides."""


@hookspec
def register_commands(cli):
    """Add sub-commands to the ``aedr`` command line; ``cli`` is the root ``typer.Typer`` app."""
