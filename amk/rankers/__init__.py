"""Built-in rankers: ``knn`` (numpy), ``gbr`` (scikit-learn) and ``lightgbm``; lower score = better.

Each saves its fitted model as data only (JSON, npz, LightGBM's text model) so loading a model from a
file never executes code from it.
"""

from __future__ import annotations

from amk.core.implementation import LazyImplementation
from amk.core.markers import hookimpl


@hookimpl
def register_rankers(register) -> None:
    """Every built-in ranker, by where it lives: none of their modules is imported until it is used."""
    register(LazyImplementation("knn", "amk.rankers.knn:KNNRanker"))
    register(LazyImplementation("gbr", "amk.rankers.gbr:GradientBoostingRanker", requires={"sklearn": "sklearn"}))
    register(LazyImplementation("lightgbm", "amk.rankers.lightgbm:LightGBMRanker", requires={"lightgbm": "lightgbm"}))
    register(LazyImplementation("replay", "amk.rankers.replay:ReplayRanker"))
