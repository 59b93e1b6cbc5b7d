"""amk: every kernel-tuning run starts smarter than the last.

Importing amk is cheap: it pulls in the hook markers and nothing heavy (no torch, lightgbm,
scikit-learn or psycopg). Everything else is imported where it is used.
"""

from amk import _moved
from amk.core.markers import hookimpl, hookspec
from amk.core.version import VERSION as __version__

_moved.install()  # the import paths amk 0.2 moved keep working, with a DeprecationWarning (amk/_moved.py)

__all__ = ["__version__", "hookimpl", "hookspec", "tune"]


def tune(objective, space, **options):
    """Tune ``objective(config) -> latency`` over ``space`` (knob -> choices) with amk's loop: warm start from
    the corpus, every evaluation recorded; returns an :class:`amk.api.TuneRun` (best config, latency, curve,
    records). The options and errors are :func:`amk.api.tune`'s (imported here, on first use)."""
    from amk.api import tune as tune_objective

    return tune_objective(objective, space, **options)
