"""What every kind's checks share: a named check bound to its subject, running a list of them, pytest ids."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs


class NotApplicable(Exception):
    """Raised by a check that cannot run with what the caller provided (e.g. no ``spoil_entry`` for a store);
    :func:`run_checks` counts it as skipped and pytest reports it as a skip."""


def expect(condition: Any, message: str) -> None:
    """Fail the running check with ``message`` (what was expected, and what came instead) unless ``condition``."""
    if not condition:
        raise AssertionError(message)


def summary(doc: str | None) -> str:
    """The first paragraph of a docstring on one line (a check's description)."""
    paragraph = (doc or "").strip().split("\n\n")[0]
    return " ".join(line.strip() for line in paragraph.splitlines())


@attrs.frozen
class Check:
    """One behaviour of a kind's contract (``name``), bound to the subject it checks.

    Call it to run it: it raises AssertionError naming the check and what was expected, and skips (under
    pytest) when it cannot run with what it was given. ``check(make_store=...)`` runs it with fields of its
    subject replaced, for factories that need a pytest fixture (a database server) and so can only be made
    inside the test.
    """

    kind: str  # "store", "ranker", "featurizer" or "backend"
    name: str  # the behaviour, as a function name: "records_come_back_identical_and_in_append_order"
    function: Callable[[Any], None] = attrs.field(repr=False)
    subject: Any = attrs.field(repr=False)  # what the function receives: factories and sample data
    label: str = ""  # which implementation this is bound to, for test ids ("jsonl"); may be empty

    @property
    def description(self) -> str:
        """The check's one-sentence description (its function's docstring)."""
        return summary(self.function.__doc__)

    @property
    def id(self) -> str:
        """The test id: ``label-name``, or ``name`` without a label."""
        return f"{self.label}-{self.name}" if self.label else self.name

    def run(self, **subject: Any) -> None:
        """Run the check (with ``subject`` fields replaced); AssertionError names it, NotApplicable passes through."""
        bound = attrs.evolve(self.subject, **subject) if subject else self.subject
        try:
            self.function(bound)
        except NotApplicable:
            raise
        except AssertionError as exc:
            raise AssertionError(f"{self._what()} failed: {exc}") from exc
        except Exception as exc:
            raise AssertionError(f"{self._what()} raised {type(exc).__name__}: {exc}") from exc

    def __call__(self, **subject: Any) -> None:
        """Run the check; under pytest a check that cannot run here is skipped, saying why."""
        try:
            self.run(**subject)
        except NotApplicable as exc:
            pytest = sys.modules.get("pytest")
            if pytest is not None:
                pytest.skip(f"{self._what()} does not apply: {exc}")

    def _what(self) -> str:
        on = f" on {self.label!r}" if self.label else ""
        return f"the {self.kind} check {self.name!r}{on} ({self.description})"


@attrs.frozen
class CheckReport:
    """What :func:`run_checks` ran: the names of the checks that passed, and of those skipped with why."""

    passed: list[str]
    skipped: dict[str, str]


def bind(kind: str, functions: Sequence[Callable[[Any], None]], subject: Any, label: str) -> list[Check]:
    """Every function of a kind's contract as a :class:`Check` bound to ``subject``."""
    return [Check(kind, f.__name__, f, subject, label) for f in functions]


def run_checks(checks: Iterable[Check]) -> CheckReport:
    """Run every check; raise one AssertionError naming each failed check and what it expected.

    A check that cannot run with what it was given (NotApplicable) is skipped and listed in the report.
    """
    checks = list(checks)
    passed: list[str] = []
    skipped: dict[str, str] = {}
    failures: list[str] = []
    for check in checks:
        try:
            check.run()
        except NotApplicable as exc:
            skipped[check.name] = str(exc)
        except AssertionError as exc:
            failures.append(str(exc))
        else:
            passed.append(check.name)
    if failures:
        kinds = sorted({c.kind for c in checks})
        raise AssertionError(f"{len(failures)} of {len(checks)} {'/'.join(kinds)} checks failed:\n"
                             + "\n".join(f"- {f}" for f in failures))
    return CheckReport(passed, skipped)


def parametrize_with_checks(checks: Iterable[Check]) -> Any:
    """A pytest decorator that runs each check as its own test (id: the check's name), like scikit-learn's.

    The decorated test receives one argument, ``check``, and calls it::

        @parametrize_with_checks(ranker_checks(MyRanker))
        def test_my_ranker(check):
            check()

    pytest is imported here, so ``import amk.testing`` does not need it.
    """
    import pytest

    checks = list(checks)
    return pytest.mark.parametrize("check", checks, ids=[c.id for c in checks])
