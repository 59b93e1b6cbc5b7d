"""amk inside Kernel Tuner (docs/kernel_tuner.md).

- :class:`AmkStrategy`: amk's search (warm start from the corpus, prior, surrogate) as a Kernel Tuner
  strategy object; every point it evaluates goes into the corpus.
- :class:`RecordingStrategy`: any of Kernel Tuner's own strategies, every point recorded into amk.
- :mod:`.harness`: Kernel Tuner's strategies replayed on cache files (``bench/kernel_tuner_strategies.py``
  and ``amk simulate`` share it); :mod:`.methodology`: the autotuning methodology's performance score.

Importing this package does not import kernel_tuner (about 6 s: it imports torch); running a strategy
does. Supported: kernel_tuner >= 1.3 (the ``kernel-tuner`` extra).
"""

from amk.integrations.kernel_tuner.recording import RecordingStrategy
from amk.integrations.kernel_tuner.strategy import AmkRun, AmkStrategy

__all__ = ["AmkRun", "AmkStrategy", "RecordingStrategy"]
