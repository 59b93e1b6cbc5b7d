"""amk: every kernel-tuning run starts smarter than the last.

Importing amk is cheap: it pulls in the hook markers and nothing heavy (no torch, lightgbm,
scikit-learn or psycopg). Everything else is imported where it is used.
"""

from amk import _moved
from amk.core.markers import hookimpl, hookspec
from amk.core.version import VERSION as __version__

_moved.install()  # the import paths amk 0.2 moved keep working, with a DeprecationWarning (amk/_moved.py)

__all__ = ["__version__", "hookimpl", "hookspec"]
