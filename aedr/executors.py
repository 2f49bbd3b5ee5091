"""The executor seam: how a benchmark's units, and a stream of files, are run (in this process, on a
Ray cluster, ...). Executors are registered through the ``register_executors`` hook, by class or
lazily by import path (:class:`aedr.registry.Lazy`); :func:`build_executor` builds one from its
options for the bench (``executor = "NAME"`` and its ``[executors.NAME]`` table) and for ``aedr score
--executor NAME``."""

from __future__ import annotations

from typing import Any, ClassVar

from .fieldtypes import ConfigError


class ExecutorError(ConfigError):
    """An executor that cannot be built (an unknown name, options it does not take or values it does
    not accept) or cannot run here (Ray cannot start, a model cannot travel to its workers)."""


class Executor:
    """Runs a benchmark's units, or scores a stream of files.

    Subclasses set ``name`` and ``description``; their constructor takes the options of the config's
    ``[executors.<name>]`` table as keyword arguments. :meth:`run` receives an
    :class:`aedr.bench.execute.Job` (the plan, the score store, the progress display, the run's
    statistics): it scores every unit with :func:`aedr.bench.execute.score_unit`, saves each
    finished unit through ``job.store`` before going on, fills ``job.stats`` (scored, skipped,
    chunks_written, scoring_seconds) and returns the failures. A method failing under a target is an
    :class:`aedr.bench.records.Failure` (its remaining work there is dropped), never an exception; an
    ``OSError`` while saving and ``KeyboardInterrupt`` propagate (the runner reports them and keeps
    what was saved). :meth:`score_files` (optional) scores an :class:`aedr.stream.FileScoring`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def run(self, job: Any) -> list:
        raise NotImplementedError

    def score_files(self, task: Any) -> Any:
        """Score ``task``'s files into its shard folder (``aedr score --executor NAME``): optional;
        :mod:`aedr.stream` has the shards, the resume rule and the rows every executor writes."""
        raise NotImplementedError(f"executor {self.name!r} does not score files (aedr score --executor); use local or ray")


def build_executor(plugins: Any, name: str, options: dict[str, Any], *, options_from: str = "[executors.{name}]") -> Executor:
    """The registered executor ``name`` built with ``options``. An unknown name or an option it does
    not take is an :class:`ExecutorError`; ``options_from`` says where the options came from
    (``{name}``: the executor's name)."""
    from .registry import RegistryError

    try:
        cls = plugins.executors.get(name)
    except RegistryError as exc:
        raise ExecutorError(f"executor: {exc}") from None
    try:
        return cls(**options)
    except TypeError as exc:
        raise ExecutorError(f"{options_from.format(name=cls.name)}: {exc}") from None
