"""The plugin manager and the typed facade over it: the only code that calls amk's hooks.

Built-in implementations are plugins like any other: the packages listed in ``BUILTIN_PLUGINS`` register
them with the same hooks third-party distributions implement through the ``amk`` entry-point group (as
LazyImplementation rows, imported on first use). Package metadata is read once, for the entry points.
Kinds are named by their base class, so what comes back is typed::

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
from amk.core.implementation import Implementation, LazyImplementation
from amk.core.kinds import KINDS, PluginKind, kind_named, kind_of
from amk.core.markers import PROJECT_NAME
from amk.core.version import VERSION

ENTRY_POINT_GROUP = "amk"
T = TypeVar("T", bound=Implementation)

# One plugin per built-in package: each package's ``__init__`` registers its implementations as
# LazyImplementation rows, so building the registry imports none of their modules (and none of numpy,
# scikit-learn or torch): a module is imported when its implementation is first used.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "amk.stores",
    "amk.featurizers",
    "amk.rankers",
    "amk.backends",
)


@attrs.define
class Registered:
    """One registered implementation and who provides it.

    ``source`` is the class, or a LazyImplementation whose class is imported on the first ``cls``;
    PluginError when that import fails or the class is not what was declared.
    """

    kind: str  # the kind's name ("ranker")
    name: str
    source: type | LazyImplementation = attrs.field(repr=False)
    plugin: str  # the plugin's name: a built-in package or an entry point name
    distribution: str
    version: str
    _loaded: type | None = attrs.field(default=None, init=False, repr=False, eq=False)

    @property
    def cls(self) -> type:
        """The implementation's class (imported now when it was registered lazily)."""
        if isinstance(self.source, type):
            return self.source
        if self._loaded is None:
            self._loaded = _load_lazy(self)
        return self._loaded

    @property
    def requires(self) -> Mapping[str, str]:
        """Modules it needs -> the extra that installs them (declared, for a lazy registration)."""
        return self.source.requires

    @property
    def missing_requirements(self) -> dict[str, str]:
        """Modules this implementation needs that are not importable here -> the extra that installs them."""
        return {m: extra for m, extra in self.requires.items() if importlib.util.find_spec(m) is None}

    @property
    def install_hint(self) -> str:
        """``pip install 'DIST[extras]'``: the extras of its own distribution that install what it misses."""
        return f"pip install '{self.distribution}[{','.join(sorted(set(self.missing_requirements.values())))}]'"


def _load_lazy(impl: Registered) -> type:
    """The class a lazy registration names, checked against its kind and its declaration."""
    lazy = impl.source
    module_name, _, attr = lazy.path.partition(":")
    where = f"the {impl.kind} {impl.name!r} ({lazy.path}, from plugin {impl.plugin!r}, {impl.distribution})"
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except Exception as exc:  # a broken plugin module is reported, never a traceback
        raise PluginError(f"{where} failed to load: {type(exc).__name__}: {exc}; fix or reinstall that plugin.") \
            from exc
    problem = _check_implementation(cls, kind_named(impl.kind))
    if problem is None and cls.name != impl.name:
        problem = f"is registered as {impl.name!r} but its class is named {cls.name!r}"
    if problem is None and dict(cls.requires) != dict(lazy.requires):
        problem = f"declares requires {dict(lazy.requires)} but its class requires {dict(cls.requires)}"
    if problem:
        raise PluginError(f"{where} {problem}; fix that plugin's registration.")
    return cls


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
            broken = f" (plugins with problems, see amk plugins: {', '.join(dict.fromkeys(p.plugin for p in self.problems))})"
        raise UnknownNameError(f"no {kind} named {name!r}; available {kind}s: {available}{broken}.")

    def create(self, kind: type[T], name: str, options: Any = None) -> T:
        """An instance of the ``kind`` (a base class) called ``name`` with ``options``, after checking its
        optional dependencies (MissingDependencyError names the extra to install)."""
        impl = self.get(kind, name)
        missing = impl.missing_requirements
        if missing:
            raise MissingDependencyError(f"the {impl.kind} {name!r} needs {', '.join(sorted(missing))}, which is "
                                         f"not installed; install it with: {impl.install_hint}.")
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


def _check_implementation(cls: Any, kind: PluginKind) -> str | None:
    """Why ``cls`` cannot be an implementation of ``kind``, or None when it can."""
    if isinstance(cls, LazyImplementation):
        if not cls.name or not isinstance(cls.name, str):
            return f"registered {cls!r} as a {kind.name} without a string 'name'"
        module_name, colon, attr = cls.path.partition(":")
        if not (module_name and colon and attr):
            return f"registered {kind.name} {cls.name!r} at {cls.path!r}, which is not 'module:Class'"
        return None
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

    for module_name in BUILTIN_PLUGINS:
        module = importlib.import_module(module_name)
        pm.register(module, name=module_name)
        origins[module_name] = (PROJECT_NAME, VERSION)  # built-ins ship with amk itself: no metadata scan

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
