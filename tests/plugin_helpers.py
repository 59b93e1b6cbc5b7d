"""Write real (tiny) installed distributions with ``amk`` entry points into a directory on sys.path."""

from __future__ import annotations

import textwrap
from pathlib import Path

RANKER_MODULE = '''
import attrs
import numpy as np
import amk
from amk.core.ranker import Ranker


class {cls}(Ranker):
    name = "{name}"

    @attrs.frozen
    class Options:
        scale: float = 1.0

    def fit(self, X, y, groups=None):
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_ * self.options.scale)


@amk.hookimpl
def register_rankers(register):
    register({cls})
'''


def write_distribution(site: Path, dist: str, module: str, source: str, entry_name: str | None = None,
                       version: str = "1.2.3") -> None:
    """A module plus a dist-info whose entry_points.txt puts it in the ``amk`` group."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[amk]\n{entry_name or module} = {module}\n")
    (info / "top_level.txt").write_text(module + "\n")
    (info / "RECORD").write_text("")


def write_ranker_plugin(site: Path, dist: str, module: str, ranker_name: str, entry_name: str | None = None) -> None:
    source = RANKER_MODULE.format(cls="PluginRanker", name=ranker_name)
    write_distribution(site, dist, module, source, entry_name)
