"""``python -m caseflow.cli``: the ``caseflow`` command."""

from __future__ import annotations

from caseflow.cli import main

main()
