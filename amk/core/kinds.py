"""The one table of plugin kinds: each kind's name, base class, registering hook and embedded default. Everything
that enumerates kinds (the registry, the config file's sections, ``amk plugins``) reads :data:`KINDS`; adding a
kind is one row here plus its hookspec."""

from __future__ import annotations

import attrs

from amk.core.backend import Backend
from amk.core.errors import PluginError
from amk.core.featurizer import Featurizer
from amk.core.ranker import Ranker
from amk.core.store import Store


@attrs.frozen
class PluginKind:
    """One pluggable kind."""

    name: str  # the config section and the word messages use: "store"
    base: type  # the class every implementation of this kind derives from
    hook: str  # the hookspec a plugin implements to register implementations of this kind
    default: str  # the implementation the embedded defaults select


KINDS: tuple[PluginKind, ...] = (
    PluginKind("store", Store, "register_stores", "jsonl"),
    PluginKind("featurizer", Featurizer, "register_featurizers", "amk"),
    PluginKind("ranker", Ranker, "register_rankers", "knn"),
    PluginKind("backend", Backend, "register_backends", "roofline"),
)
KIND_NAMES: tuple[str, ...] = tuple(k.name for k in KINDS)


def kind_named(name: str) -> PluginKind:
    """The kind called ``name`` (``"ranker"``); PluginError naming the kinds otherwise."""
    for kind in KINDS:
        if kind.name == name:
            return kind
    raise PluginError(f"unknown plugin kind {name!r}; kinds are {list(KIND_NAMES)}.")


def kind_of(base: type | PluginKind) -> PluginKind:
    """The kind of a base class (``Ranker``) or of a kind itself."""
    if isinstance(base, PluginKind):
        return base
    for kind in KINDS:
        if kind.base is base:
            return kind
    raise PluginError(f"{base!r} is not a plugin kind's base class; kinds are {[k.base.__name__ for k in KINDS]}.")
