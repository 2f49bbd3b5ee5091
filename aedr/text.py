"""Text from users and from the file system, made safe to write and to print.

Two hazards, one helper each:

- :func:`safe_str`: a file name that is not valid UTF-8 (``bad\\xff.png``) reaches Python as a
  string with surrogate escapes, which no UTF-8 file (CSV, Parquet, JSON) and no UTF-8 terminal can
  take. The undecodable bytes become backslash escapes (``bad\\\\xff.png``), readable and lossless
  for a reader; every other character is kept as it is.
- :func:`markup`: rich reads ``[...]`` in printed strings as markup, so a path like ``x[red]y.png``
  is shown mangled and one with ``[/]`` raises. Every user-provided string (paths, names, config
  text, error messages) goes through :func:`markup` before it is printed with rich.
"""

from __future__ import annotations

import os
from typing import Any

from rich.markup import escape


def safe_str(value: Any) -> str:
    """``value`` as text that encodes as UTF-8: surrogate escapes become ``\\xNN`` escapes."""
    text = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    if isinstance(text, bytes):
        return text.decode("utf-8", "backslashreplace")
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:  # the bytes of an undecodable file name, as os.fsencode gives them back
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # surrogates that are not file-name escapes
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def markup(value: Any) -> str:
    """User-provided text for a rich ``print`` or table cell: UTF-8 safe and shown verbatim."""
    return escape(safe_str(value))
