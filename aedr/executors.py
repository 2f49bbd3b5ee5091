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


def option_types(cls: type[Executor]) -> dict[str, Any]:
    """An executor's options and their declared types: its constructor's keyword parameters."""
    import inspect
    import typing

    hints = typing.get_type_hints(cls.__init__)
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return {p.name: hints.get(p.name, Any) for p in params if p.kind in kinds}


def build_executor(plugins: Any, name: str, options: dict[str, Any], *, options_from: str = "[executors.{name}]",
                   text: bool = False) -> Executor:
    """The registered executor ``name`` built with ``options``, each checked against the type its
    constructor declares (:mod:`aedr.fieldtypes`, as method options are; with ``text``, command-line
    text parsed to it). An unknown name, an option it does not take or a value of the wrong type is
    an :class:`ExecutorError` naming where the options came from (``options_from``; ``{name}``: the
    executor's name)."""
    import difflib

    from .fieldtypes import FieldTypeError, check_value, parse_text
    from .registry import RegistryError

    try:
        cls = plugins.executors.get(name)
    except RegistryError as exc:
        raise ExecutorError(f"executor: {exc}") from None
    where, types = options_from.format(name=cls.name), option_types(cls)
    for key in options:
        if key not in types:
            close = difflib.get_close_matches(key, list(types), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ExecutorError(f"{where}: executor {cls.name!r} has no option {key!r}{hint}; its options: {', '.join(types) or 'none'}")
    try:
        values = {k: parse_text(k, v, types[k]) if text else check_value(k, v, types[k]) for k, v in options.items()}
    except FieldTypeError as exc:
        raise ExecutorError(f"{where}: {exc}") from None
    return cls(**values)
