"""The prior: what the corpus knows, turned into warm starts and a learned order of candidates.

* :func:`warm_start` (:mod:`amk.prior.warm_start`): the best-known configs for the same or the nearest
  workload on the same (or a similar) device; ``[]`` is an honest cold start.
* :func:`make_ranker` / :func:`rank` (:mod:`amk.prior.ranking`): a featurizer and a ranker trained on the
  corpus, and candidates ordered best-first by them.
* :mod:`amk.prior.training`: the corpus's usable rows and their target (latency relative to the best
  known for the same workload and device); :mod:`amk.prior.distance`: which workloads and devices
  transfer; :mod:`amk.prior.features`: numeric views the featurizers share;
  :mod:`amk.prior.evaluation`: offline ranking quality (``amk evaluate``).

Every function takes the corpus as a store, its :class:`~amk.core.columns.CorpusColumns` (read once,
reuse it across calls) or records.
"""

from amk.prior.distance import device_distance, workload_distance
from amk.prior.ranking import MIN_ROWS_TO_RANK, Prior, fit_prior, make_ranker, rank
from amk.prior.training import DEFAULT_KINDS, Corpus, TrainingSet, corpus_columns, load_points
from amk.prior.warm_start import MIN_ROWS_TO_WARM, Seed, cold_start_reason, warm_start, warm_start_combined

__all__ = [
    "DEFAULT_KINDS",
    "MIN_ROWS_TO_RANK",
    "MIN_ROWS_TO_WARM",
    "Corpus",
    "Prior",
    "Seed",
    "TrainingSet",
    "cold_start_reason",
    "corpus_columns",
    "device_distance",
    "fit_prior",
    "load_points",
    "make_ranker",
    "rank",
    "warm_start",
    "warm_start_combined",
    "workload_distance",
]
