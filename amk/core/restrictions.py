"""Restrictions between knobs, as Kernel Tuner writes them: a Python-like expression over the knob names
(``"block_size_x * block_size_y <= 1024"``) or a callable that takes the config dict and returns a bool.

An expression is parsed once and evaluated by simpleeval (a library made to evaluate untrusted
expressions: no attribute access to dunders, no imports, no statements, bounded powers and string
lengths), never by ``eval``. It may use the knob names, numbers, strings, tuples and lists, arithmetic,
comparisons, ``and``/``or``/``not``, ``in``, ``x if c else y`` and the functions ``min``, ``max``,
``abs``, ``round``, ``int``, ``float`` and ``len``. A name that is not a knob is refused when the
restriction is compiled, and an expression that raises on a config (a division by zero) is a
ValidationError naming the restriction and the config, never a config silently dropped.
"""

from __future__ import annotations

import ast
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from amk.core.errors import ValidationError

Restriction = str | Callable[[Mapping[str, Any]], bool]

FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": min, "max": max, "abs": abs, "round": round, "int": int, "float": float, "len": len,
}
_CONSTANTS = frozenset({"True", "False", "None"})


class CompiledRestriction:
    """One restriction expression, parsed once; calling it with a config says whether the config is allowed."""

    def __init__(self, text: str, knob_names: Iterable[str]) -> None:
        from simpleeval import EvalWithCompoundTypes, InvalidExpression

        self.text = text
        try:
            ast.parse(text.strip(), mode="eval")  # one expression: no statement, no second expression
            self._node = EvalWithCompoundTypes.parse(text)
        except (SyntaxError, InvalidExpression, ValueError) as exc:
            raise ValidationError(f"the restriction {text!r} is not an expression ({exc}); write it as Python, "
                                  "e.g. 'block_size_x * block_size_y <= 1024'.") from None
        knobs = set(knob_names)
        names = {n.id for n in ast.walk(self._node) if isinstance(n, ast.Name)}
        unknown = sorted(names - knobs - set(FUNCTIONS) - _CONSTANTS)
        if unknown:
            raise ValidationError(f"the restriction {text!r} names {unknown}, which are not knobs; "
                                  f"the knobs are {sorted(knobs)}.")
        self._evaluator = EvalWithCompoundTypes(functions=dict(FUNCTIONS), names={})
        self._lock = threading.Lock()

    def __call__(self, config: Mapping[str, Any]) -> bool:
        with self._lock:
            self._evaluator.names = dict(config)
            try:
                return bool(self._evaluator.eval(self.text, previously_parsed=self._node))
            except Exception as exc:  # noqa: BLE001 (the expression's own failure: ZeroDivisionError, a refused feature)
                raise ValidationError(
                    f"the restriction {self.text!r} raised {type(exc).__name__} ({exc}) on the config "
                    f"{dict(config)!r}; guard it (e.g. 'b > 0 and n % b == 0') or fix it.") from None

    def __repr__(self) -> str:
        return f"CompiledRestriction({self.text!r})"


def compile_restrictions(restrictions: Sequence[Restriction] | None,
                         knob_names: Iterable[str]) -> tuple[list[Callable[[Mapping[str, Any]], bool]], list[str]]:
    """The restrictions as callables over a config dict, and a text for each (for messages).

    Strings are compiled (ValidationError for a bad one); callables are kept as they are and named by
    their qualified name.
    """
    knob_names = list(knob_names)
    checks, texts = [], []
    for restriction in restrictions or ():
        if isinstance(restriction, str):
            checks.append(CompiledRestriction(restriction, knob_names))
            texts.append(restriction)
        elif callable(restriction):
            checks.append(restriction)
            texts.append(getattr(restriction, "__qualname__", repr(restriction)))
        else:
            raise ValidationError(f"a restriction must be an expression string or a callable taking the config "
                                  f"dict, got {restriction!r}.")
    return checks, texts
