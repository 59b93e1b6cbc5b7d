"""The plugin manager and the typed facade over it: the only code that calls amk's hooks.

Built-in implementations are plugins like any other: modules listed in ``BUILTIN_PLUGINS`` registered
with the same hooks third-party distributions implement through the ``amk`` entry-point group. Kinds
are named by their base class, so what comes back is typed::

    ranker = get_registry().create(Ranker, "knn")      # -> Ranker
    create(Backend, "replay", ReplayBackend.Options(cache="A100.json.gz"))
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from collections.abc import Mapping
from importlib import metadata
from typing import Any, TypeVar

import attrs
import pluggy

from amk.core import hookspecs
from amk.core.errors import MissingDependencyError, PluginError, UnknownNameError
from amk.core.implementation import Implementation
from amk.core.kinds import KINDS, PluginKind, kind_of
from amk.core.markers import PROJECT_NAME
from amk.core.version import VERSION

ENTRY_POINT_GROUP = "amk"
T = TypeVar("T", bound=Implementation)

BUILTIN_PLUGINS: tuple[str, ...] = (
    "amk.stores.jsonl",
    "amk.stores.sqlite",
    "amk.stores.postgres",
    "amk.featurizers.amk",
    "amk.featurizers.generic",
    "amk.rankers.knn",
    "amk.rankers.gbr",
    "amk.rankers.lightgbm",
    "amk.rankers.replay",
    "amk.stores.memory",
    "amk.backends.replay",
    "amk.backends.roofline",
    "amk.backends.cpu",
    "amk.backends.cuda",
    "amk.backends.command",
)


@attrs.frozen
class Registered:
    """One registered implementation and who provides it."""

    kind: str  # the kind's name ("ranker")
    name: str
    cls: type
    plugin: str  # the plugin's name: a built-in module or an entry point name
    distribution: str
    version: str

    @property
    def missing_requirements(self) -> dict[str, str]:
        """Modules this implementation needs that are not importable here -> the extra that installs them."""
        requires: Mapping[str, str] = self.cls.requires
        return {m: extra for m, extra in requires.items() if importlib.util.find_spec(m) is None}


@attrs.frozen
class PluginProblem:
    """A plugin that failed to load or registered something wrong."""

    plugin: str
    distribution: str
    message: str


@attrs.frozen
class LoadedPlugin:
    name: str
    distribution: str
    version: str
    hooks: tuple[str, ...]


class Registry:
    """Every implementation of every kind, the plugins that provide them, and what went wrong loading them."""

    def __init__(self) -> None:
        self.implementations: dict[str, dict[str, Registered]] = {kind.name: {} for kind in KINDS}
        self.duplicates: dict[tuple[str, str], list[Registered]] = {}
        self.problems: list[PluginProblem] = []
        self.plugins: list[LoadedPlugin] = []
        # How it was built, so a measurement worker process rebuilds the same registry (amk.tuning.isolation).
        self.include_entry_points = True

    def names(self, kind: type[Implementation] | PluginKind) -> list[str]:
        """The names of every implementation of ``kind`` (a base class such as ``Ranker``), sorted."""
        return sorted(self.implementations[kind_of(kind).name])

    def get(self, kind: type[Implementation] | PluginKind, name: str) -> Registered:
        """The implementation of ``kind`` called ``name``; errors name what exists or what broke."""
        kind = kind_of(kind).name
        if (kind, name) in self.duplicates:
            providers = ", ".join(f"{i.plugin} ({i.distribution})" for i in self.duplicates[kind, name])
            raise PluginError(
                f"the {kind} name {name!r} is registered by more than one plugin ({providers}); "
                "uninstall all but one of them."
            )
        impl = self.implementations[kind].get(name)
        if impl is not None:
            return impl
        for problem in self.problems:
            if problem.plugin == name or problem.distribution == name:
                raise PluginError(
                    f"the {kind} {name!r} comes from plugin {problem.plugin!r} ({problem.distribution}), "
                    f"which failed to load: {problem.message}; fix or reinstall that plugin."
                )
        available = ", ".join(sorted(self.implementations[kind])) or "none"
        broken = ""
        if self.problems:
            broken = " (plugins that failed to load: " + ", ".join(p.plugin for p in self.problems) + ")"
        raise UnknownNameError(f"no {kind} named {name!r}; available {kind}s: {available}{broken}.")

    def create(self, kind: type[T], name: str, options: Any = None) -> T:
        """An instance of the ``kind`` (a base class) called ``name`` with ``options``, after checking its
        optional dependencies (MissingDependencyError names the extra to install)."""
        impl = self.get(kind, name)
        missing = impl.missing_requirements
        if missing:
            extras = sorted(set(missing.values()))
            raise MissingDependencyError(
                f"the {impl.kind} {name!r} needs {', '.join(sorted(missing))}, which is not installed; "
                f"install it with: pip install 'amk[{','.join(extras)}]'."
            )
        return impl.cls(options)

    def _add(self, impl: Registered) -> None:
        existing = self.implementations[impl.kind].get(impl.name)
        if existing is None:
            self.implementations[impl.kind][impl.name] = impl
            return
        self.duplicates.setdefault((impl.kind, impl.name), [existing]).append(impl)
        self.problems.append(PluginProblem(
            impl.plugin, impl.distribution,
            f"registers the {impl.kind} name {impl.name!r}, already registered by {existing.plugin}",
        ))


def _distribution_of(module_name: str, packages: Mapping[str, list[str]]) -> tuple[str, str]:
    """The distribution that installs ``module_name`` and its version; ``packages`` is
    ``metadata.packages_distributions()``, read once per registry (it scans every installed package)."""
    top = module_name.split(".")[0]
    for dist in packages.get(top, []):
        try:
            return dist, metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    if top == "amk":
        return "amk", VERSION
    return top, "unknown"


def _check_implementation(cls: Any, kind: PluginKind) -> str | None:
    """Why ``cls`` cannot be an implementation of ``kind``, or None when it can."""
    if not isinstance(cls, type):
        return f"registered {cls!r}, which is not a class"
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        return f"registered {cls.__qualname__} as a {kind.name} without a string 'name'"
    if not issubclass(cls, kind.base):
        return (f"registered {cls.__qualname__} as a {kind.name}, but it does not derive from "
                f"{kind.base.__module__}.{kind.base.__name__}")
    options = getattr(cls, "Options", None)
    if options is None or not attrs.has(options):
        return f"registered {kind.name} {name!r} whose Options is not an attrs class"
    return None


def build_registry(include_entry_points: bool = True) -> Registry:
    """Load built-in and installed plugins and collect what each registers."""
    registry = Registry()
    registry.include_entry_points = include_entry_points
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    origins: dict[str, tuple[str, str]] = {}

    packages = metadata.packages_distributions()
    for module_name in BUILTIN_PLUGINS:
        module = importlib.import_module(module_name)
        pm.register(module, name=module_name)
        origins[module_name] = _distribution_of(module_name, packages)

    if include_entry_points:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist else "unknown"
            version = ep.dist.version if ep.dist else "unknown"
            if pm.has_plugin(ep.name) or ep.name in origins:
                registry.problems.append(PluginProblem(
                    ep.name, dist, "another plugin already uses this entry point name; rename one of them"))
                continue
            try:
                plugin = ep.load()
                pm.register(plugin, name=ep.name)
            except Exception as exc:  # a broken third-party plugin must not take amk down
                registry.problems.append(PluginProblem(ep.name, dist, f"{type(exc).__name__}: {exc}"))
                continue
            origins[ep.name] = (dist, version)

    hooks_of: dict[str, list[str]] = {name: [] for name in origins}
    for kind in KINDS:
        hook_name = kind.hook
        for hookimpl in getattr(pm.hook, hook_name).get_hookimpls():
            plugin_name = hookimpl.plugin_name
            dist, version = origins[plugin_name]
            hooks_of[plugin_name].append(hook_name)
            registered: list[Any] = []
            try:
                hookimpl.function(register=registered.append)
            except Exception as exc:
                registry.problems.append(PluginProblem(
                    plugin_name, dist, f"its {hook_name} hook raised {type(exc).__name__}: {exc}"))
                continue
            for cls in registered:
                problem = _check_implementation(cls, kind)
                if problem:
                    registry.problems.append(PluginProblem(plugin_name, dist, problem))
                    continue
                registry._add(Registered(kind.name, cls.name, cls, plugin_name, dist, version))

    registry.plugins = [
        LoadedPlugin(name, *origins[name], tuple(hooks_of[name])) for name in origins
    ]
    return registry


@functools.cache
def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    return build_registry()


def create(kind: type[T], name: str, options: Any = None) -> T:
    """``get_registry().create(kind, name, options)``: e.g. ``create(Ranker, "knn")``."""
    return get_registry().create(kind, name, options)
