"""amk inside other tools' tuning loops: each module (or package) here meets one tool where its users are.

- :mod:`amk.integrations.kernel_tuner`: a Kernel Tuner search strategy that warm-starts from the corpus
  and records every point (``AmkStrategy``), and a recorder for Kernel Tuner's own strategies
  (``RecordingStrategy``).
- :mod:`amk.integrations.optuna`: warm-start an Optuna study from the corpus and record its trials.

Nothing here imports the other tool until it is used; each tool is an extra in ``pyproject.toml``.
"""
