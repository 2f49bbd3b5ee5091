"""Strict checks of dataclass field values against their declared types.

One mechanism for every place options enter: method options (Python keyword arguments, the
``[methods.<name>]`` tables of a bench config, ``-o KEY=VALUE`` on the command line) and the
``[bench]`` table. A value must already have its declared type (``"false"`` is not a bool, ``true``
is not an int); only text from the command line is parsed, by :func:`parse_text`, to the declared
type first.

Supported annotations: ``bool``, ``int`` (numpy integers are converted), ``float`` (an integer is
accepted and converted; NaN and infinity are not), ``str``, ``Literal[...]``, ``list[X]``,
``tuple[X, ...]``, ``dict[K, V]``, ``X | Y`` (``X | None`` included), ``Any`` and plain classes
(checked with ``isinstance``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import numbers
import types
import typing
from typing import Any, Literal, Union

_NONE = type(None)
TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")
NONE_WORDS = ("none", "null")


class ConfigError(ValueError):
    """A configuration the user has to fix (unknown key, wrong type, impossible budget): a bench
    config, an executor's options. The message names the file, table or option at fault."""


class FieldTypeError(TypeError, ValueError):
    """A value whose type differs from the field's declared type. ``field`` names the field.

    Both a TypeError and a ValueError, so callers catching either (as option validation always has,
    ``validate()`` raising ValueError) see it."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field} {message}")
        self.field = field


@functools.lru_cache(maxsize=None)
def field_types(cls: type) -> dict[str, Any]:
    """The resolved annotation of every init field of a dataclass (``from __future__`` strings included)."""
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError) as exc:
        raise TypeError(
            f"{cls.__name__}: the field annotations cannot be resolved ({exc}); every field type must be "
            "importable in the module that defines the class"
        ) from None
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _members(tp: Any) -> tuple[Any, ...] | None:
    """The members of a union annotation, or None if ``tp`` is not a union."""
    origin = typing.get_origin(tp)
    if origin is Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        return typing.get_args(tp)
    return None


def describe(tp: Any) -> str:
    """``tp`` in words, for error messages: "true or false", "an integer", "a list of strings" ..."""
    if tp is Any:
        return "any value"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a finite number"
    if tp is str:
        return "a string"
    if tp is _NONE:
        return "none"
    members = _members(tp)
    if members is not None:
        words = [describe(m) for m in members if m is not _NONE]
        if _NONE in members:
            words.append("none")
        return " or ".join(words)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (list, tuple):
        return f"a list of {_plural(args[0]) if args else 'values'}"
    if origin is dict:
        return f"a table of {_plural(args[1])}" if args else "a table"
    if isinstance(tp, type):
        return f"a {tp.__name__}"
    return str(tp)


_PLURALS = {bool: "true/false values", int: "integers", float: "finite numbers", str: "strings"}


def _plural(tp: Any) -> str:
    if tp in _PLURALS:
        return _PLURALS[tp]
    origin = typing.get_origin(tp)
    if origin is dict:
        return "tables"
    if origin in (list, tuple):
        return "lists"
    return "values" if tp is Any else f"values that are {describe(tp)}"


def _shown(value: Any) -> str:
    kind = {bool: "a bool", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a table"}.get(type(value))
    text = ("true" if value else "false") if isinstance(value, bool) else repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({kind or type(value).__name__})"


class _Mismatch(Exception):
    pass


def _check(value: Any, tp: Any) -> Any:
    """``value`` (normalised: an int for a float field becomes a float) or :class:`_Mismatch`."""
    if tp is Any:
        return value
    members = _members(tp)
    if members is not None:
        for member in members:
            try:
                return _check(value, member)
            except _Mismatch:
                continue
        raise _Mismatch
    if tp is _NONE or tp is None:
        if value is None:
            return None
        raise _Mismatch
    if tp is bool:
        if isinstance(value, bool):
            return value
        if type(value).__name__ == "bool" and type(value).__module__ == "numpy":  # numpy.bool_
            return bool(value)
        raise _Mismatch
    if tp is int:  # numpy integers too (as Python ints); never a bool
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return value if type(value) is int else int(value)
        raise _Mismatch
    if tp is float:  # an integer is a number too; NaN and infinity are not accepted
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value):
            return value if type(value) is float else float(value)
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        for allowed in args:
            if type(value) is type(allowed) and value == allowed:
                return value
        raise _Mismatch
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        inner = args[0] if args else Any
        items = [_check(v, inner) for v in value]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        key_tp, value_tp = args if args else (Any, Any)
        return {_check(k, key_tp): _check(v, value_tp) for k, v in value.items()}
    check_against = origin if origin is not None else tp
    if isinstance(check_against, type):
        if isinstance(value, check_against):
            return value
        raise _Mismatch
    raise TypeError(f"cannot check values against the annotation {tp!r}")


def check_value(name: str, value: Any, tp: Any) -> Any:
    """``value`` if it has type ``tp`` (an int given for a float comes back as a float); otherwise
    :class:`FieldTypeError` naming ``name``, what was expected and what was given."""
    try:
        return _check(value, tp)
    except _Mismatch:
        raise FieldTypeError(name, f"must be {describe(tp)}, got {_shown(value)}") from None


def check_fields(obj: Any) -> None:
    """Check the fields of dataclass instance ``obj`` against their declared types, normalising in
    place (an int in a float field becomes a float); the first mismatch raises :class:`FieldTypeError`."""
    for name, tp in field_types(type(obj)).items():
        value = getattr(obj, name)
        checked = check_value(name, value, tp)
        if checked is not value:
            object.__setattr__(obj, name, checked)


def parse_text(name: str, raw: str, tp: Any) -> Any:
    """Command-line text parsed to the declared type ``tp`` (then checked as any other value):
    ``true/false/yes/no/on/off/1/0`` for a bool, ``none`` for an optional, comma-separated lists."""
    try:
        return check_value(name, _parse(raw, tp), tp)
    except _Mismatch:
        raise FieldTypeError(name, f"must be {describe(tp)}, got {raw!r}") from None


def _parse(raw: str, tp: Any) -> Any:
    text = raw.strip()
    members = _members(tp)
    if members is not None:
        if _NONE in members and text.lower() in NONE_WORDS:
            return None
        # strings last: "3" for ``int | str`` is the integer
        for member in sorted((m for m in members if m is not _NONE), key=lambda m: m is str):
            try:
                return _check(_parse(raw, member), member)
            except (_Mismatch, ValueError):
                continue
        raise _Mismatch
    if tp is bool:
        if text.lower() in TRUE_WORDS:
            return True
        if text.lower() in FALSE_WORDS:
            return False
        raise _Mismatch
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise _Mismatch from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise _Mismatch from None
    if tp is str:
        return raw
    if tp is _NONE:
        if text.lower() in NONE_WORDS:
            return None
        raise _Mismatch
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        for allowed in args:
            if str(allowed) == text or (isinstance(allowed, str) and allowed.casefold() == text.casefold()):
                return allowed
        raise _Mismatch
    if origin in (list, tuple):
        inner = args[0] if args else str
        return [_parse(part, inner) for part in text.split(",") if part.strip()]
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return raw
