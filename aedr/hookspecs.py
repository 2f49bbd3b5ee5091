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
def register_metrics(register):
    """Call ``register(metric)`` once for each :class:`aedr.bench.Metric` (a figure computed for every
    (method, target, source) pair of a benchmark) the plugin provides."""


@hookspec
def register_perturbations(register):
    """Call ``register(perturbation_class)`` once for each :class:`aedr.Perturbation` subclass (an image
    transformation such as JPEG re-compression, with a strength parameter) the plugin provides."""


@hookspec
def register_executors(register):
    """Call ``register(executor_class)`` once for each :class:`aedr.bench.Executor` subclass (a way to
    run a benchmark's units: in this process, on a cluster) the plugin provides."""


@hookspec
def register_commands(cli):
    """Add sub-commands to the ``aedr`` command line; ``cli`` is the root ``typer.Typer`` app."""
