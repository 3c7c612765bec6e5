"""YAML loading that remembers line numbers, so data-file errors can name file, line and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["MAX_DATA_FILE_BYTES", "LineDict", "LineList", "line_of", "load_yaml", "load_yaml_text"]


class LineDict(dict[str, Any]):
    """A mapping read from YAML; ``line`` is where it starts, ``key_lines`` where each key is."""

    line: int = 0
    key_lines: dict[str, int]


class LineList(list[Any]):
    """A sequence read from YAML; ``item_lines[i]`` is the line of item ``i``."""

    line: int = 0
    item_lines: list[int]


# libyaml's parser when PyYAML was built with it (the usual wheels): reading the six workflows at every
# command's start takes a tenth of the time. The constructors below, and so the line numbers, are the same.
_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[misc]
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
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


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


def _construct_str(loader: _Loader, node: yaml.ScalarNode) -> str:
    # Dates and timestamps stay strings: the callers parse them and report bad ones with a line.
    return str(loader.construct_scalar(node))


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_str)


def load_yaml_text(text: str) -> Any:
    """Parse YAML text with line numbers (a SafeLoader). Raises ``yaml.YAMLError`` with marks."""
    return yaml.load(text, Loader=_Loader)


#: Data files (workflows, holiday notices) are a few kilobytes; a larger file is not one of them.
MAX_DATA_FILE_BYTES = 1024 * 1024


def load_yaml(path: Path) -> tuple[Any, str]:
    """Read ``path``; return the document and an error prefix. Raises ``yaml.YAMLError`` with marks.

    A file that is not UTF-8 text (a binary file given by mistake) or is larger than
    :data:`MAX_DATA_FILE_BYTES` is a ``yaml.YAMLError`` too, saying so. ``OSError`` passes through.
    """
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
