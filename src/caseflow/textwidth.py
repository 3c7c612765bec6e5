"""Text laid out by display width, so Chinese lines up in a terminal.

A Chinese character takes two columns, a Latin letter or digit one, a combining mark none. Padding by
``len()`` puts 18 (a Sunday) under 六; padding by display width puts it under 日. Widths come from the
Unicode East Asian Width property (UAX #11) in the standard library's ``unicodedata``: the same table
wcwidth reads, without its import cost at every command's start.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

__all__ = ["pad", "table", "width"]

_ZERO = ("Mn", "Me", "Cf")  # combining marks and format characters (zero-width joiner …) take no column


def width(text: str) -> int:
    """The number of terminal columns ``text`` takes."""
    total = 0
    for ch in text:
        if unicodedata.category(ch) in _ZERO:
            continue
        total += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return total


def pad(text: str, size: int, align: str = "<") -> str:
    """``text`` padded with spaces to ``size`` columns: ``<`` left, ``>`` right, ``^`` centred."""
    gap = max(0, size - width(text))
    if align == ">":
        return " " * gap + text
    if align == "^":
        return " " * (gap // 2) + text + " " * (gap - gap // 2)
    return text + " " * gap


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str = "", *, indent: str = "",
          gap: int = 2) -> str:
    """Rows under headers, every column as wide as its widest cell.

    ``align`` gives one of ``<`` ``>`` ``^`` per column (default: left); cells are ``str()``-ed.
    Trailing spaces are dropped.
    """
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    columns = max(len(r) for r in cells)
    widths = [max((width(r[i]) for r in cells if i < len(r)), default=0) for i in range(columns)]
    lines = []
    for row in cells:
        parts = [pad(cell, widths[i], align[i] if i < len(align) else "<") for i, cell in enumerate(row)]
        lines.append((indent + (" " * gap).join(parts)).rstrip())
    return "\n".join(lines)
