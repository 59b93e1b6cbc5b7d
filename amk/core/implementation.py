"""What every pluggable class has: a ``name``, an attrs ``Options`` class and its optional requirements.

As in scikit-learn, ``__init__`` only stores options and learned state is set by ``fit`` in attributes
whose names end in ``_``; :func:`check_is_fitted` is the one guard against using a model before ``fit``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from amk.core.errors import NotFittedError


@attrs.frozen
class NoOptions:
    """Options of an implementation that takes none."""


class Implementation:
    """The base of every store, featurizer, ranker and backend.

    ``name`` is what a config file selects; ``Options`` (an attrs class whose fields all have defaults)
    receives the config section; ``requires`` maps an importable module to the amk extra that installs it
    (checked before the implementation is created, so a missing package is an install hint, not an
    ImportError).
    """

    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    requires: ClassVar[dict[str, str]] = {}

    def __init__(self, options: Any = None) -> None:
        self.options = options if options is not None else self.Options()


@attrs.frozen
class LazyImplementation:
    """An implementation registered by where it lives instead of as a class, so that listing it (``amk
    plugins``, loading the config) does not import its module: ``register(LazyImplementation("knn",
    "amk.rankers.knn:KnnRanker"))``. ``name`` and ``requires`` must be the class's own; the registry
    imports ``path`` (``module:Class``) on first use and refuses a class whose name or requires differ.
    """

    name: str
    path: str  # "package.module:Class", as an entry point names an object
    requires: Mapping[str, str] = attrs.field(factory=dict, converter=dict)  # the class's ``requires``


def check_is_fitted(model: Any, *attributes: str) -> None:
    """Raise NotFittedError unless ``model`` has every one of ``attributes`` (learned in ``fit``).

    With no ``attributes``, any public attribute ending in ``_`` counts as learned state (scikit-learn's
    convention).
    """
    if attributes:
        fitted = all(hasattr(model, a) for a in attributes)
    else:
        fitted = any(k.endswith("_") and not k.startswith("_") for k in vars(model))
    if not fitted:
        kind = "model"
        for base in type(model).__mro__:
            if base.__module__.startswith("amk.core.") and base.__name__ in ("Ranker", "Featurizer"):
                kind = base.__name__.lower()
                break
        name = getattr(model, "name", type(model).__name__)
        raise NotFittedError(f"the {name!r} {kind} is used before fit; fit it (or load a saved one) first.")
