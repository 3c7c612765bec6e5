"""The workflow registry: every definition by key and version, the latest for new cases.

A case stays pinned to the version it was opened under (the store keeps its text); the registry answers
both.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from caseflow.errors import WorkflowNotFoundError
from caseflow.workflow import WorkflowDef, _quoted
from caseflow.workflowfile import load_workflows

__all__ = ["WorkflowRegistry"]


class WorkflowRegistry:
    """Definitions by key and version: the latest for new cases, any pinned version for old ones."""

    def __init__(self, definitions: Iterable[WorkflowDef] = ()) -> None:
        self._versions: dict[str, dict[str, WorkflowDef]] = {}
        self._latest: dict[str, WorkflowDef] = {}
        for defn in definitions:
            self.add(defn)

    def add(self, defn: WorkflowDef, *, make_latest: bool = True) -> WorkflowDef:
        """Register ``defn``; it becomes its key's latest unless ``make_latest`` is false (an archived
        version a stored case is pinned to). Adding a known version again only makes it the latest.
        """
        if not isinstance(defn, WorkflowDef):
            raise TypeError(f"expected a WorkflowDef, got {type(defn).__name__}")
        versions = self._versions.setdefault(defn.key, {})
        if defn.version in versions:
            # A known version published again (a revision rolled back) becomes the latest once more.
            if make_latest:
                self._latest[defn.key] = versions[defn.version]
            return versions[defn.version]
        versions[defn.version] = defn
        if make_latest or defn.key not in self._latest:
            self._latest[defn.key] = defn
        return defn

    def _unknown(self, key: str) -> WorkflowNotFoundError:
        return WorkflowNotFoundError(
            f"no workflow {key!r}; known workflows are {_quoted(sorted(self._latest))}", field="key"
        )

    def latest(self, key: str) -> WorkflowDef:
        """The definition new cases of ``key`` use."""
        try:
            return self._latest[key]
        except KeyError:
            raise self._unknown(key) from None

    def get(self, key: str, version: str) -> WorkflowDef:
        """The definition ``key`` at ``version`` (the full sha256, or an unambiguous prefix of 8+ digits)."""
        versions = self._versions.get(key)
        if versions is None:
            raise self._unknown(key)
        if version in versions:
            return versions[version]
        matches = [v for v in versions if len(version) >= 8 and v.startswith(version)]
        if len(matches) == 1:
            return versions[matches[0]]
        raise WorkflowNotFoundError(
            f"workflow {key!r} has no version {version!r}; known versions are "
            f"{_quoted(v[:12] for v in versions)}", field="version",
        )

    def versions(self, key: str) -> list[str]:
        """Every registered version of ``key``, oldest first."""
        self.latest(key)
        return list(self._versions[key])

    def keys(self) -> list[str]:
        """The workflow keys, sorted."""
        return sorted(self._latest)

    def __iter__(self) -> Iterator[WorkflowDef]:
        """The latest definition of each key, by key."""
        return iter([self._latest[key] for key in self.keys()])

    def __len__(self) -> int:
        return len(self._latest)

    def __contains__(self, key: object) -> bool:
        return key in self._latest

    @classmethod
    def load(cls, directory: Path | str | None = None) -> WorkflowRegistry:
        """A registry of the workflows in ``directory``.

        By default: the shipped ones, then those of ``$CASEFLOW_WORKFLOWS_DIR`` (where administrators
        keep their own and their revisions of ours), which win by key.
        """
        registry = cls(load_workflows(directory).values())
        extra = os.environ.get("CASEFLOW_WORKFLOWS_DIR")
        if directory is None and extra:
            for defn in load_workflows(extra).values():
                registry.add(defn)
        return registry
