"""What differs between the Kernel Tuner versions amk supports (>= 1.3, the first to accept a strategy
object), in one place, so the rest of the integration has one code path.

- 1.4 and later: ``tuning_options.budget`` (a ``TuningBudget``) counts evaluations in the runner and holds
  the time limit; a failed config carries ``"__error__"``; the objective is a list (multi-objective);
  ``kernel_tuner.tune_cache`` replays a cache file.
- 1.3: no budget object; ``CostFunc`` counts unique configs in ``tuning_options.unique_results`` against
  ``max_fevals`` and checks ``time_limit`` before each evaluation; a failure is the objective value
  itself (an ``ErrorConfig``, a ``str`` subclass); the objective is a string; no ``tune_cache``
  (``tune_kernel(..., simulation_mode=True, cache=PATH)`` replays, with every config of the product in
  the space, so :func:`simulate_cache` restricts it to the configs the file holds without a failure).

Sources: kernel_tuner 1.3.0 and 1.5.0 (``strategies/common.py``, ``util.py``, ``interface.py``,
``runners/``); 1.4.0 is identical to 1.5.0 in every part used here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from amk.core.errors import MissingDependencyError

OLDEST_SUPPORTED = (1, 3)


def require_kernel_tuner():
    """The ``kernel_tuner`` module; MissingDependencyError (with the install line) when it is absent or too old."""
    try:
        import kernel_tuner
    except ImportError:
        raise MissingDependencyError(
            "the Kernel Tuner integration needs kernel_tuner, which is not installed; install it with: "
            "pip install 'amk[kernel-tuner]'."
        ) from None
    if version_tuple() < OLDEST_SUPPORTED:
        raise MissingDependencyError(
            f"kernel_tuner {kernel_tuner.__version__} is too old: amk needs >= 1.3 (the first that accepts "
            "a strategy object); upgrade with: pip install 'amk[kernel-tuner]'."
        )
    return kernel_tuner


def version() -> str:
    import kernel_tuner

    return str(getattr(kernel_tuner, "__version__", "0"))


def version_tuple() -> tuple[int, ...]:
    parts = []
    for piece in version().split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def has_budget_object(tuning_options: Mapping[str, Any]) -> bool:
    """True on Kernel Tuner >= 1.4 (``tuning_options["budget"]`` is a real key there)."""
    return tuning_options.get("budget") is not None


def objective(tuning_options: Any) -> tuple[str, bool]:
    """(objective name, higher is better), from a list (>= 1.4, the first objective) or a string (1.3)."""
    name, higher = tuning_options.objective, tuning_options.objective_higher_is_better
    if isinstance(name, (list, tuple)):
        name = name[0]
        higher = higher[0] if isinstance(higher, (list, tuple)) else higher
    return str(name), bool(higher)


def failure_marker(result: Mapping[str, Any], objective_name: str) -> str | None:
    """The failure's Kernel Tuner marker (``"InvalidConfig"``, ``"CompilationFailedConfig"``,
    ``"RuntimeFailedConfig"``, ...) or None for a result that passed."""
    if "__error__" in result:  # >= 1.4
        return _marker(result["__error__"])
    for key in (objective_name, "time"):
        value = result.get(key)
        if isinstance(value, str):  # 1.3 (an ErrorConfig is a str), and old cache entries
            return _marker(value)
    return None


def _marker(error: Any) -> str:
    text = str(error)
    return text if text else type(error).__name__


def evaluations_left(tuning_options: Any, searchspace_size: int) -> int:
    """Evaluations Kernel Tuner still allows (``max_fevals``, capped by the search space's size).

    Call after a ``CostFunc`` was made: on 1.3 its constructor caps ``max_fevals`` in ``tuning_options``.
    """
    budget = tuning_options.get("budget")
    if budget is not None:
        left = budget.get_evaluations_remaining()
        return int(min(left, searchspace_size))
    limit = tuning_options.get("max_fevals")
    limit = searchspace_size if limit is None or not math.isfinite(limit) else min(int(limit), searchspace_size)
    return max(limit - len(tuning_options.unique_results), 0)


def stop_reason(tuning_options: Any) -> str | None:
    """Why Kernel Tuner would refuse another evaluation (its max_fevals or time limit), or None."""
    from kernel_tuner import util

    budget = tuning_options.get("budget")
    try:
        if budget is not None:
            budget.raise_exception_if_done()
        else:
            util.check_stop_criterion(tuning_options)  # 1.3 only
    except util.StopCriterionReached as exc:
        return f"Kernel Tuner's budget is spent: {exc}"
    return None


def device_name(runner: Any) -> str:
    """The device name Kernel Tuner reports: the GPU's, the cache header's in simulation, ``''`` from the
    C backend (``platform.processor()``, empty on Linux)."""
    dev = getattr(runner, "dev", None)
    return str(getattr(dev, "name", "") or "").strip()


def simulate_cache(path: Path, *, strategy: Any, restrictions: Sequence[Any] = (), **kwargs: Any):
    """``kernel_tuner.tune_cache(path, ...)``: replay an uncompressed cache file with ``strategy``; the
    search space holds the configs the file holds without a failure (Kernel Tuner >= 1.4 infers exactly
    that; on 1.3 the same restriction is built here). Returns ``(results, env)``."""
    kernel_tuner = require_kernel_tuner()
    path = Path(path)
    if hasattr(kernel_tuner, "tune_cache"):
        return kernel_tuner.tune_cache(str(path), strategy=strategy, restrictions=list(restrictions) or None,
                                       **kwargs)
    header = json.loads(path.read_text())
    params = list(header["tune_params_keys"])
    valid = {tuple(entry[p] for p in params) for entry in header["cache"].values()
             if isinstance(entry.get("time"), (int, float)) and not isinstance(entry.get("time"), bool)}

    def recorded_without_failure(*values: Any) -> bool:  # a restriction in a list gets the values in order
        return values in valid

    problem_size = header["problem_size"]
    problem_size = tuple(problem_size) if isinstance(problem_size, list) else problem_size
    return kernel_tuner.tune_kernel(header["kernel_name"], "", problem_size, [], header["tune_params"],
                                    cache=str(path), simulation_mode=True, strategy=strategy,
                                    restrictions=[recorded_without_failure, *restrictions], **kwargs)
