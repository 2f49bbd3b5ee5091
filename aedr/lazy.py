"""Heavy modules (torch) bound at import time but imported on first use.

Registering a plugin imports its model and method modules; the CLI's listings (``aedr models``,
``aedr methods``) need their classes, not torch. A module that uses torch only inside functions
binds it with::

    if TYPE_CHECKING:
        import torch
    else:
        torch = lazy_import("torch")

and torch is imported the first time one of those functions runs. Anything evaluated when the
module is imported (a ``torch.float32`` constant, an ``nn.Module`` base class, a ``@torch.no_grad()``
decorator) imports it right away, so such modules keep a plain ``import torch``.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any, Callable, Generic, Mapping, TypeVar

T = TypeVar("T")


class LazyModule(types.ModuleType):
    """Stands for the module ``name``; the first attribute read imports it (once)."""

    def __getattr__(self, attr: str) -> Any:
        module = importlib.import_module(self.__name__)
        value = getattr(module, attr)
        self.__dict__[attr] = value  # later reads of this attribute skip __getattr__
        return value

    def __repr__(self) -> str:
        loaded = "loaded" if self.__name__ in sys.modules else "not loaded yet"
        return f"<lazy module {self.__name__!r} ({loaded})>"


def lazy_import(name: str) -> types.ModuleType:
    """The module itself when it is already imported, else a :class:`LazyModule` for it."""
    return sys.modules.get(name) or LazyModule(name)


class lazy_default(Generic[T]):
    """A class attribute whose value is made on first read, e.g. ``device = lazy_default(lambda:
    torch.device("cpu"))``, so that defining the class needs no torch. Instances and subclasses
    override it by plain assignment, as they would a plain class attribute."""

    def __init__(self, make: Callable[[], T]):
        self.make = make

    def __get__(self, obj: object, owner: type | None = None) -> T:
        return self.make()


def lazy_exports(package: str, exports: Mapping[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A package's module-level ``__getattr__`` that imports each export from its submodule on first
    use (``exports``: name -> submodule, relative to ``package``) and keeps it in ``namespace`` (the
    package's ``globals()``); any other name is tried as a submodule (``aedr.card`` after
    ``import aedr``). Use: ``__getattr__ = lazy_exports(__name__, _EXPORTS, globals())``."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            try:
                return importlib.import_module(f".{name}", package)
            except ModuleNotFoundError as exc:
                if exc.name != f"{package}.{name}":
                    raise
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", package), name)
        namespace[name] = value  # resolved once
        return value

    return __getattr__
