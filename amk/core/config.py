"""amk's config: which store, featurizer, ranker and backend to use, and their options.

Looked for, first found wins: ``--config FILE``, ``$AMK_CONFIG``, ``./amk.toml``, ``[tool.amk]`` in
``./pyproject.toml``; with none, the embedded defaults. A file looks like::

    [store]
    name = "jsonl"            # or: url = "sqlite:corpus.db"
    path = ".amk/corpus.jsonl"  # every other key is an option of the chosen implementation

    [ranker]
    name = "lightgbm"
    n_estimators = 300

Relative paths in a store's ``path`` option are relative to the file that sets them.
"""

from __future__ import annotations

import contextlib
import os
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import ClassValidationError
from cattrs.v import format_exception

from amk.core.errors import AmkError, ConfigError, PluginError, ValidationError
from amk.core.inputs import strict_converter
from amk.core.kinds import KIND_NAMES, KINDS, kind_named, kind_of
from amk.core.plugins import Registry, get_registry
from amk.core.store import Store

ENV_VAR = "AMK_CONFIG"
CONFIG_FILE = "amk.toml"
DEFAULT_STORE_PATH = ".amk/corpus.jsonl"
DEFAULT_ORIGIN = "embedded default"

# Sections that configure an engine, not select a plugin: checked by its class (``AmkConfig.settings_for``).
SETTINGS_SECTIONS: tuple[str, ...] = ("tune",)

T = TypeVar("T")

options_converter = strict_converter(forbid_extra_keys=True, detailed_validation=True)
"""Structures config sections into Options classes and back (``unstructure``: plain data to send elsewhere).
Strict (:func:`amk.core.inputs.strict_converter`): ``budget = true``, ``budget = 10.7``, ``timeout_s = "12"``
and ``timeout_s = nan`` are refused, never coerced."""


@attrs.frozen
class Selection:
    """The implementation chosen for one kind, its raw options, and where each value came from."""

    kind: str
    name: str
    options: dict[str, Any]
    origins: dict[str, str]  # "name" and each option key -> where it was set
    base_dir: Path  # relative paths in options resolve against this


def structure_options(options_cls: type, raw: Mapping[str, Any], *, where: str, label: str) -> Any:
    """Structure ``raw`` into ``options_cls``; unknown keys and bad values name ``where`` and ``label``."""
    allowed = [f.name for f in attrs.fields(options_cls)]
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} for {label}; allowed keys are {allowed or 'none'}.")
    try:
        return options_converter.structure(dict(raw), options_cls)
    except ClassValidationError as exc:
        details = "; ".join(cattrs.transform_error(exc, path=label, format_exception=_format_leaf))
        raise ConfigError(f"{where}: {details}; fix the value in that section.") from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: bad value for {label}: {exc}; fix the value in that section.") from None


def _format_leaf(exc: BaseException, type_: type | None) -> str:
    """A validator's own message (it names the key, the value and the rule); cattrs' wording otherwise."""
    if type(exc) is ValueError and str(exc):
        return str(exc)
    return format_exception(exc, type_)


def parse_store_url(url: str, registry: Registry) -> tuple[str, dict[str, Any]]:
    """``jsonl:PATH`` / ``sqlite:PATH`` / ``postgresql://...`` -> (store name, options)."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    for name in registry.names(Store):
        cls = registry.get(Store, name).cls
        if scheme in cls.url_schemes:
            return name, cls.options_from_url(url)
    schemes = sorted(s for n in registry.names(Store) for s in registry.get(Store, n).cls.url_schemes)
    hint = ""
    if not scheme:  # a bare path: name the URL it most likely means
        guess = "sqlite" if url.lower().endswith((".sqlite", ".sqlite3", ".db")) else "jsonl"
        hint = f" (for the file {url!r}: {guess}:{url})"
    raise ConfigError(f"store URL {url!r} has no known scheme; use one of {[s + ':' for s in schemes]}{hint}.")


def open_store(url: str, registry: Registry | None = None) -> Store:
    """The store a URL names (``jsonl:PATH``, ``sqlite:PATH``, ``postgresql://...``), with default options."""
    registry = registry or get_registry()
    name, raw = parse_store_url(url, registry)
    impl = registry.get(Store, name)
    options = structure_options(impl.cls.Options, raw, where=f"store URL {url!r}", label=f"[store] {name!r}")
    return registry.create(Store, name, options)


@contextlib.contextmanager
def opened_store(store: Store | str | os.PathLike | None, config: AmkConfig | None = None) -> Iterator[Store]:
    """A Store as it is (left open); a store URL opened and closed after; None: ``config``'s store (else the
    config file's, else ``.amk/corpus.jsonl``). ValidationError for anything else."""
    if isinstance(store, Store):
        yield store
        return
    if store is not None and not isinstance(store, (str, os.PathLike)):
        raise ValidationError(f"store must be a Store, a store URL ('jsonl:corpus.jsonl') or None, got {store!r}.")
    with (config or load_config()).create(Store) if store is None else open_store(os.fspath(store)) as opened:
        yield opened


@attrs.define
class AmkConfig:
    """The effective config: a selection per kind plus amk's own settings sections."""

    path: Path | None
    selections: dict[str, Selection]
    settings: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    registry: Registry = attrs.field(factory=get_registry, repr=False)

    @property
    def source(self) -> str:
        return str(self.path) if self.path else DEFAULT_ORIGIN

    def selection(self, kind: str) -> Selection:
        return self.selections[kind]

    def options(self, kind: str) -> Any:
        """The selected implementation's Options, checked against its Options class."""
        sel = self.selections[kind]
        impl = self.registry.get(kind_named(kind), sel.name)
        raw = dict(sel.options)
        if kind == "store" and isinstance(raw.get("path"), str) and not Path(raw["path"]).is_absolute():
            raw["path"] = str(sel.base_dir / raw["path"])
        where = next((o for o in sel.origins.values() if o != DEFAULT_ORIGIN), DEFAULT_ORIGIN)  # who set a value
        return structure_options(impl.cls.Options, raw, where=where, label=f"[{kind}] {sel.name!r}")

    def create(self, kind: type[T]) -> T:
        """An instance of the selected implementation of ``kind`` (a base class: ``config.create(Ranker)``)."""
        name = kind_of(kind).name
        return self.registry.create(kind, self.selections[name].name, self.options(name))

    def validate(self) -> None:
        """Check every selection names an installed implementation and its options fit."""
        for kind in KIND_NAMES:
            self.options(kind)

    def settings_for(self, section: str, settings_cls: type[T]) -> T:
        """The ``[section]`` settings structured into ``settings_cls`` (its defaults where absent)."""
        if section not in SETTINGS_SECTIONS:
            raise ConfigError(f"no settings section [{section}]; the sections are {list(SETTINGS_SECTIONS)}.")
        return structure_options(settings_cls, self.settings.get(section, {}), where=self.source,
                                 label=f"[{section}]")

    def with_store_url(self, url: str, origin: str) -> AmkConfig:
        """A copy that uses the store a URL names (``--store`` on the command line)."""
        name, options = parse_store_url(url, self.registry)
        selections = dict(self.selections)
        selections["store"] = Selection("store", name, options,
                                        {"name": origin, **{k: origin for k in options}}, Path.cwd())
        return attrs.evolve(self, selections=selections)


def find_config_file(explicit: str | os.PathLike | None = None, cwd: Path | None = None) -> tuple[Path | None, str]:
    """The config file to read and why it was chosen; (None, reason) when there is none."""
    cwd = cwd or Path.cwd()
    if explicit:
        path = Path(explicit)
        if not path.exists() or path.is_dir():  # a pipe (--config <(...)) or /dev/null reads as a file
            raise ConfigError(f"config file {str(path)!r} given by --config is missing or a directory; check the path.")
        return path, "--config"
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env)
        if not path.exists() or path.is_dir():
            raise ConfigError(f"config file {env!r} named by ${ENV_VAR} is missing or a directory; fix or unset ${ENV_VAR}.")
        return path, f"${ENV_VAR}"
    if (cwd / CONFIG_FILE).is_file():
        return cwd / CONFIG_FILE, CONFIG_FILE
    pyproject = cwd / "pyproject.toml"
    if pyproject.is_file() and "amk" in _read_toml(pyproject).get("tool", {}):
        return pyproject, "[tool.amk] in pyproject.toml"
    return None, "no config file found; embedded defaults"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the file.") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a TOML text file (byte {exc.start} is not UTF-8); give amk its config "
                          "file.") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deep to be a config file; fix the file.") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}); check its permissions.") from None


def load_config(explicit: str | os.PathLike | None = None, cwd: Path | None = None,
                registry: Registry | None = None) -> AmkConfig:
    """Read the effective config (see the module docstring for where it is looked for)."""
    registry = registry or get_registry()
    cwd = cwd or Path.cwd()
    path, _why = find_config_file(explicit, cwd)
    data: dict[str, Any] = {}
    if path is not None:
        data = _read_toml(path)
        if path.name == "pyproject.toml" and explicit is None:
            data = data.get("tool", {}).get("amk", {})
        elif path.name == "pyproject.toml":
            data = data.get("tool", {}).get("amk", data)
    where = str(path) if path else DEFAULT_ORIGIN
    base_dir = path.parent.resolve() if path and path.is_file() else cwd  # a pipe, /dev/null: where amk runs

    unknown = sorted(set(data) - set(KIND_NAMES) - set(SETTINGS_SECTIONS))
    if unknown:
        allowed = list(KIND_NAMES) + sorted(SETTINGS_SECTIONS)
        raise ConfigError(f"{where}: unknown section(s) {unknown}; allowed sections are {allowed}.")

    selections: dict[str, Selection] = {}
    for plugin_kind in KINDS:
        kind = plugin_kind.name
        section = data.get(kind, {})
        if not isinstance(section, dict):
            raise ConfigError(f"{where}: [{kind}] must be a table of keys, got {section!r}.")
        section = dict(section)
        if kind == "store" and "url" in section:
            if "name" in section:
                raise ConfigError(f"{where}: [store] sets both 'url' and 'name'; keep one of them.")
            url = section.pop("url")
            if not isinstance(url, str):
                raise ConfigError(f"{where}: [store] url must be a string, got {url!r}.")
            try:
                name, url_options = parse_store_url(url, registry)
            except AmkError as exc:  # a URL of no known scheme, or naming no file
                raise ConfigError(f"{where}: [store] {exc}") from None
            section = {**url_options, **section}
            origins = {"name": where, **{k: where for k in section}}
        else:
            name = section.pop("name", None)
            origins = {k: where for k in section}
            origins["name"] = where if name is not None else DEFAULT_ORIGIN
            if name is None:
                name = plugin_kind.default
            if not isinstance(name, str):
                raise ConfigError(f"{where}: [{kind}] name must be a string, got {name!r}.")
        if kind == "store" and name == plugin_kind.default and "path" not in section:
            section["path"] = DEFAULT_STORE_PATH
            origins["path"] = DEFAULT_ORIGIN
        if origins["name"] != DEFAULT_ORIGIN:  # embedded defaults are checked when they are used
            try:
                registry.get(plugin_kind, name)
            except PluginError as exc:
                raise ConfigError(f"{where}: [{kind}] {exc}") from None
        selections[kind] = Selection(kind, name, section, origins, base_dir if path else cwd)

    settings = {}
    for section in SETTINGS_SECTIONS:
        if section in data:
            if not isinstance(data[section], dict):
                raise ConfigError(f"{where}: [{section}] must be a table of keys, got {data[section]!r}.")
            settings[section] = dict(data[section])
    config = AmkConfig(path=path, selections=selections, settings=settings, registry=registry)
    for kind in set(data) & set(KIND_NAMES):  # a section the file wrote is checked now (a typo'd key, a bad value)
        config.options(kind)
    return config
