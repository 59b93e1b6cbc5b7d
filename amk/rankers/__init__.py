"""Built-in rankers: ``knn`` (numpy), ``gbr`` (scikit-learn) and ``lightgbm``; lower score = better.

Each saves its fitted model as data only (JSON, npz, LightGBM's text model) so loading a model from a
file never executes code from it.
"""
