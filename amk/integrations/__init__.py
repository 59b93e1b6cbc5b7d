"""amk inside other tools' loops: each module bridges one tool (its optional dependency is an extra).

* :mod:`amk.integrations.optuna`: warm-start an Optuna study from the corpus and record its trials.
"""
