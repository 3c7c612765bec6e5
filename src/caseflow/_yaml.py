"""YAML loading that remembers line numbers, so data-file errors can name file, line and field.

PyYAML is imported on the first load, not with this module: the shipped workflows and holiday files are
answered from their parsed forms at the prompt, and importing PyYAML alone cost a tenth of a command's
start there.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import yaml

__all__ = ["MAX_DATA_FILE_BYTES", "LineDict", "LineList", "line_of", "load_yaml", "load_yaml_text", "parsed_form"]


class LineDict(dict[str, Any]):
    """A mapping read from YAML; ``line`` is where it starts, ``key_lines`` where each key is."""

    line: int = 0
    key_lines: dict[str, int]


class LineList(list[Any]):
    """A sequence read from YAML; ``item_lines[i]`` is the line of item ``i``."""

    line: int = 0
    item_lines: list[int]


@functools.cache
def _loader() -> Any:
    """The loader class: libyaml's parser when PyYAML was built with it (the usual wheels) — reading the
    workflows takes a tenth of the time — with constructors that record lines (the same either way)."""
    import yaml

    base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class _Loader(base):  # type: ignore[misc]
        pass

    def construct_mapping(loader: Any, node: yaml.MappingNode) -> LineDict:
        result = LineDict()
        result.line = node.start_mark.line + 1
        result.key_lines = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                # A key is a name: `no:` or `on:` (YAML 1.1 booleans) and `1:` keep the text written.
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key)
            if key in result:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            result[key] = loader.construct_object(value_node, deep=True)
            result.key_lines[key] = key_node.start_mark.line + 1
        return result

    def construct_sequence(loader: Any, node: yaml.SequenceNode) -> LineList:
        result = LineList(loader.construct_object(child, deep=True) for child in node.value)
        result.line = node.start_mark.line + 1
        result.item_lines = [child.start_mark.line + 1 for child in node.value]
        return result

    def construct_str(loader: Any, node: yaml.ScalarNode) -> str:
        # Dates and timestamps stay strings: the callers parse them and report bad ones with a line.
        return str(loader.construct_scalar(node))

    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, construct_sequence)
    _Loader.add_constructor("tag:yaml.org,2002:timestamp", construct_str)
    return _Loader


def load_yaml_text(text: str) -> Any:
    """Parse YAML text with line numbers (a SafeLoader). Raises ``yaml.YAMLError`` with marks."""
    import yaml

    return yaml.load(text, Loader=_loader())  # a SafeLoader (CSafeLoader) subclass


#: Data files (workflows, holiday notices) are a few kilobytes; a larger file is not one of them.
MAX_DATA_FILE_BYTES = 1024 * 1024


def load_yaml(path: Path) -> tuple[Any, str]:
    """Read ``path``; return the document and an error prefix. Raises ``yaml.YAMLError`` with marks.

    A file that is not UTF-8 text (a binary file given by mistake) or is larger than
    :data:`MAX_DATA_FILE_BYTES` is a ``yaml.YAMLError`` too, saying so. ``OSError`` passes through.
    """
    import yaml

    size = path.stat().st_size
    if size > MAX_DATA_FILE_BYTES:
        raise yaml.YAMLError(f"the file holds {size} bytes, more than a data file's {MAX_DATA_FILE_BYTES}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise yaml.YAMLError(f"not UTF-8 text (undecodable byte at offset {exc.start}): is it the right file?") \
            from None
    return load_yaml_text(text), str(path)


def line_of(container: Any, key: str | int | None = None) -> int | None:
    """The line of ``container[key]`` (or of the container itself) when known."""
    if key is None:
        return getattr(container, "line", None)
    if isinstance(container, LineDict) and isinstance(key, str):
        return container.key_lines.get(key, container.line)
    if isinstance(container, LineList) and isinstance(key, int) and 0 <= key < len(container.item_lines):
        return container.item_lines[key]
    return getattr(container, "line", None)


def parsed_form(path: Path, section: str = "files") -> dict[str, Any]:
    """The records of a shipped parsed form (``{"files": {sha256: record}}``, or another ``section``); empty
    when the file is missing or unreadable (a trimmed install: what it holds is then computed as usual)."""
    import json

    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    records = found.get(section) if isinstance(found, dict) else None
    return records if isinstance(records, dict) else {}
