"""A typed name -> object registry with the errors a user needs: duplicates name both plugins,
unknown names list the close matches. An entry may be registered lazily, by the import path of its
object (:class:`Lazy`), so that listing a registry imports nothing heavy."""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class RegistryError(LookupError):
    """Base class of name-resolution errors."""


class UnknownNameError(RegistryError):
    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, known
        close = difflib.get_close_matches(name.lower(), [k.lower() for k in known], n=3, cutoff=0.5)
        by_lower = {k.lower(): k for k in known}
        hint = f" Did you mean: {', '.join(by_lower[c] for c in close)}?" if close else ""
        listing = ", ".join(sorted(known)) or "(none registered)"
        super().__init__(f"Unknown {kind} {name!r}.{hint} Known {kind}s: {listing}.")


class DuplicateNameError(RegistryError):
    def __init__(self, kind: str, name: str, first_plugin: str, second_plugin: str):
        self.kind, self.name, self.plugins = kind, name, (first_plugin, second_plugin)
        super().__init__(
            f"{kind.capitalize()} {name!r} is registered by two plugins: {first_plugin!r} and "
            f"{second_plugin!r}. Uninstall one, or restrict loading with AEDR_PLUGINS."
        )


class UnloadableEntryError(RegistryError):
    """A lazily registered entry whose object cannot be imported, or is not what its kind needs."""


@dataclass(frozen=True)
class Lazy:
    """An object registered by where it lives, ``"package.module:Name"``, imported when the entry is
    first looked up. ``name`` and ``description`` are what a listing shows before that."""

    name: str
    target: str
    description: str = ""

    def load(self) -> Any:
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    plugin: str


class Registry(Generic[T]):
    """Names are matched exactly first, then case-insensitively. ``check`` validates an object
    registered lazily once it is loaded (raising ``TypeError``), as the plugin loader validates the
    others when they are registered."""

    def __init__(self, kind: str, check: Callable[[Any], None] | None = None):
        self.kind = kind
        self.check = check
        self._entries: dict[str, Entry[T]] = {}
        self._conflicts: dict[str, DuplicateNameError] = {}

    def add(self, name: str, obj: T, plugin: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} registered by {plugin!r} has no name")
        if name in self._entries:
            error = DuplicateNameError(self.kind, name, self._entries[name].plugin, plugin)
            self._conflicts[name] = error
            raise error
        self._entries[name] = Entry(name, obj, plugin)

    def entry(self, name: str) -> Entry[T]:
        if name in self._conflicts:
            raise self._conflicts[name]
        if name in self._entries:
            return self._loaded(self._entries[name])
        folded = [e for key, e in self._entries.items() if key.casefold() == name.casefold()]
        if len(folded) == 1:
            return self._loaded(folded[0])
        raise UnknownNameError(self.kind, name, list(self._entries))

    def _loaded(self, entry: Entry) -> Entry[T]:
        """The entry with its object imported (once), when it was registered lazily."""
        if not isinstance(entry.obj, Lazy):
            return entry
        lazy = entry.obj
        try:
            obj = lazy.load()
            if self.check is not None:
                self.check(obj)
        except Exception as exc:
            raise UnloadableEntryError(f"{self.kind} {entry.name!r} ({lazy.target}, from plugin {entry.plugin!r}) cannot be "
                                       f"loaded: {type(exc).__name__}: {exc}") from exc
        if getattr(obj, "name", entry.name) != entry.name:
            raise UnloadableEntryError(f"{self.kind} {entry.name!r} ({lazy.target}) is named {obj.name!r}")
        self._entries[entry.name] = loaded = Entry(entry.name, obj, entry.plugin)
        return loaded

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def names(self) -> list[str]:
        return list(self._entries)

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter([self._loaded(e) for e in list(self._entries.values())])

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries
