"""The executor seam: where work items are scored (in this process, on a Ray cluster, ...).

Executors are registered through the ``register_executors`` hook, by class or lazily by import path (:class:`aedr.registry.Lazy`); :func:`build_executor` builds one from its
options for the bench (``executor = "NAME"`` and its ``[executors.NAME]`` table) and for ``aedr score
--executor NAME``."""

from __future__ import annotations

from typing import Any, ClassVar, Iterable, Iterator

from .fieldtypes import ConfigError
from .kernel import ItemScorer, Outcome, Progress, Scoring, WorkItem


class ExecutorError(ConfigError):
    """An executor that cannot be built (an unknown name, options it does not take or values it does
    not accept) or cannot run here (Ray cannot start, a model cannot travel to its workers)."""


class Executor:
    """Maps work items to outcomes: in this process, on a Ray cluster, ...

    Subclasses set ``name`` and ``description``; their constructor takes the options of the config's
    ``[executors.<name>]`` table (or ``--executor-option``) as keyword arguments, each with a declared
    type. :meth:`map` is the one method to implement: it yields one :class:`aedr.kernel.Outcome` per
    :class:`aedr.kernel.WorkItem` (in any order), each made by :func:`aedr.kernel.score_item`, which
    never raises for a bad image or a failing method. The drivers (the bench, the stream) keep the
    books: progress, timing, saving, failures and resuming are theirs, so an executor only scores.
    ``items`` may be consumed lazily (the driver leaves out the items of a method that has failed
    under its target) or all at once. ``progress`` (optional to call): after each batch of an item,
    with the item, the images just scored and the seconds they took. ``parallelism``: about how many
    items run at once (it turns measured seconds into an ETA)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    parallelism: float = 1.0

    def map(self, items: Iterable[WorkItem], scoring: Scoring, progress: Progress | None = None) -> Iterator[Outcome]:
        raise NotImplementedError


class LocalExecutor(Executor):
    """Scores the items one after the other in this process, keeping loaded images and first
    reconstructions while consecutive items share a group (a bench chunk, a stream shard)."""

    name = "local"
    description = "in this process, item after item; first reconstructions shared across methods per chunk"

    def map(self, items: Iterable[WorkItem], scoring: Scoring, progress: Progress | None = None) -> Iterator[Outcome]:
        scorer = ItemScorer(scoring)
        for item in items:
            yield scorer(item, progress)


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
