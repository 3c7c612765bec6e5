"""The public API is what ``caseflow.__all__`` says, and nothing it names is missing."""

from __future__ import annotations

import caseflow


def test_all_names_exist() -> None:
    for name in caseflow.__all__:
        assert hasattr(caseflow, name), name


def test_all_is_sorted_and_unique() -> None:
    names = [n for n in caseflow.__all__ if n != "__version__"]
    assert len(set(names)) == len(names)


def test_every_public_class_and_function_is_exported() -> None:
    public = {
        name
        for name, value in vars(caseflow).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("caseflow")
    }
    assert public <= set(caseflow.__all__)


def test_errors_form_one_tree() -> None:
    for name in caseflow.__all__:
        value = getattr(caseflow, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, caseflow.CaseflowError), name


def test_lookup_errors_keep_their_stdlib_meaning() -> None:
    assert issubclass(caseflow.CaseNotFoundError, LookupError)
    assert issubclass(caseflow.CalendarCoverageError, LookupError)
    assert issubclass(caseflow.TimeLimitError, ValueError)
    assert issubclass(caseflow.PermissionDeniedError, PermissionError)
