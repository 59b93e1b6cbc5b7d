"""Import paths that moved in amk 0.2, kept working for one release with a DeprecationWarning.

amk 0.2 split the old ``amk.core`` into the plugin framework (still ``amk.core``) and packages of their
own (:mod:`amk.decode`, :mod:`amk.prior`, :mod:`amk.tuning`, :mod:`amk.formats`). A plugin written
against 0.1 that imports, say, ``amk.core.interfaces.Ranker`` still gets it, with a warning naming the
new path. Remove this module (and its hook in ``amk/__init__.py``) in amk 0.3.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType
from typing import Any

# old module -> new module (every name moved along)
MOVED_MODULES: dict[str, str] = {
    "amk.core.shapes": "amk.decode.shapes",
    "amk.core.schedule": "amk.decode.schedule",
    "amk.core.decode": "amk.decode.step",
    "amk.backends.decode_schedule": "amk.decode.knobs",
    "amk.core.features": "amk.prior.features",
    "amk.core.training": "amk.prior.training",
    "amk.core.evaluation": "amk.prior.evaluation",
    "amk.core.prior": "amk.prior",
    "amk.core.tune": "amk.tuning",
    "amk.core.tune_policy": "amk.tuning.policy",
    "amk.core.tune_state": "amk.tuning.state",
    "amk.core.tune_report": "amk.tuning.report",
    "amk.core.guarded": "amk.tuning.gates",
    "amk.core.isolation": "amk.tuning.isolation",
    "amk.core.progress": "amk.tuning.progress",
    "amk.core.simulate": "amk.simulate",
    "amk.importers": "amk.formats",
    "amk.importers.amk_jsonl": "amk.formats.amk_jsonl",
    "amk.importers.kernel_tuner": "amk.formats.kernel_tuner",
    "amk.exporters": "amk.formats",
    "amk.exporters.kernel_tuner": "amk.formats.kernel_tuner",
    "amk.core.interfaces": "amk.core",
}
# names whose new home is not the module's own new path
MOVED_NAMES: dict[str, dict[str, str]] = {
    "amk.core.interfaces": {
        "NoOptions": "amk.core.implementation", "Implementation": "amk.core.implementation",
        "NotFittedError": "amk.core.errors", "Featurizer": "amk.core.featurizer", "Ranker": "amk.core.ranker",
        "Knob": "amk.core.space", "SearchSpace": "amk.core.space", "Constraint": "amk.core.space",
        "Backend": "amk.core.backend",
    },
    "amk.core.prior": {"SEARCHABLE_KNOB_CHOICES": "amk.decode.schedule",
                       "SEARCHABLE_KNOB_DEFAULTS": "amk.decode.schedule"},
    "amk.core.tune": {"TuneTarget": "amk.tuning.target", "portfolio_warm_start": "amk.tuning.target",
                      "target_id": "amk.tuning.target", "run_stem": "amk.tuning.target",
                      "default_state_path": "amk.tuning.target", "without_run": "amk.tuning.loop",
                      "adopt_from_store": "amk.tuning.loop", "new_state": "amk.tuning.loop"},
    "amk.core.tune_state": {"TuneStateError": "amk.core.errors"},
    "amk.rankers.persist": {"ModelFileError": "amk.core.errors"},
    "amk.exporters.kernel_tuner": {"ExportError": "amk.core.errors"},
}


class _MovedModule(ModuleType):
    """Stands at an old path: every attribute is read from its new home."""

    def __getattr__(self, name: str) -> Any:
        old = self.__name__
        new = MOVED_NAMES.get(old, {}).get(name, MOVED_MODULES[old])
        try:
            return getattr(importlib.import_module(new), name)
        except AttributeError:
            raise AttributeError(f"module {old!r} (moved to {MOVED_MODULES[old]!r}) has no attribute {name!r}") \
                from None


class _MovedLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return _MovedModule(spec.name)

    def exec_module(self, module: ModuleType) -> None:
        module.__path__ = []  # a package, so old sub-paths (amk.importers.kernel_tuner) resolve too
        warnings.warn(f"{module.__name__} moved to {MOVED_MODULES[module.__name__]} in amk 0.2; import it from "
                      "there (the old path goes in amk 0.3).", DeprecationWarning, stacklevel=2)


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname in MOVED_MODULES:
            return importlib.machinery.ModuleSpec(fullname, _MovedLoader(), is_package=True)
        return None


def install() -> None:
    """Let the old paths import (once per process)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder())  # first: a stale file at an old path must not win
