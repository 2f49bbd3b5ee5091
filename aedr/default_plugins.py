"""The built-in plugin: everything aedr ships (the AEDR and TRACE methods, the perturbation kinds, the bench's
metrics and executors, the ``aedr bench`` and ``aedr leaderboard`` commands), registered through the
same hooks a third-party plugin implements. The types they are instances of are declared in the core;
this module only registers, and imports what it registers when a hook is called."""

from __future__ import annotations

from .hookspecs import hookimpl


@hookimpl
def register_methods(register):
    from .methods.aedr_method import AEDR
    from .methods.trace_method import TRACE

    register(AEDR)
    register(TRACE)


@hookimpl
def register_perturbations(register):
    from .perturbations import BUILTIN

    for kind in BUILTIN:
        register(kind)


@hookimpl
def register_metrics(register):
    from .bench.metrics import BUILTIN_METRICS
    from .bench.openset import BUILTIN_OPENSET_METRICS

    for metric in (*BUILTIN_METRICS, *BUILTIN_OPENSET_METRICS):
        register(metric)


@hookimpl
def register_executors(register):
    from .registry import Lazy

    # imported when looked up, so that listing executors imports no Ray code
    register(Lazy("local", "aedr.executors:LocalExecutor",
                  "in this process, item after item; first reconstructions shared across methods per chunk"))
    register(Lazy("ray", "aedr.ray_executor:RayExecutor",
                  "on Ray: one actor pool per target model (a GPU node or a cluster); each unit saved as it comes back"))


@hookimpl
def register_commands(cli):
    from .bench.commands import MultiValueCommand, bench_command, leaderboard_command

    cli.command("bench", cls=MultiValueCommand)(bench_command)
    cli.command("leaderboard")(leaderboard_command)
