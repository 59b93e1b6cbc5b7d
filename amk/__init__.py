"""amk: every kernel-tuning run starts smarter than the last.

Importing amk is cheap: it pulls in the hook markers and nothing heavy (no torch, lightgbm,
scikit-learn or psycopg). Everything else is imported where it is used.
"""

from amk.core.markers import hookimpl, hookspec

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl", "hookspec"]
