"""``amk.tune(objective, space)``: amk's tune loop over a Python objective, in one call.

The same loop as ``amk tune`` (:mod:`amk.tuning`): warm start from the corpus, the prior's order and the
surrogate, the gates (A/B re-measurement of a faster config for measured objectives), every evaluation
recorded in the store, failures included, and a state file to resume from. The objective is wrapped by
:class:`amk.tuning.objective.ObjectiveBackend`; this module adds what a one-call API decides for the
caller: the config file's store, ``[tune]`` settings, featurizer and ranker, the workload's name and the
device.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from amk.core.columns import config_key
from amk.core.config import AmkConfig, load_config, opened_store
from amk.core.devices import Device, resolve_device
from amk.core.errors import ConfigError, ValidationError
from amk.core.records import Record
from amk.core.space import SearchSpace
from amk.core.store import Store
from amk.core.workload import Workload
from amk.tuning.loop import TuneResult, without_run
from amk.tuning.loop import tune as run_loop
from amk.tuning.objective import Objective, ObjectiveBackend, as_search_space
from amk.tuning.progress import Progress
from amk.tuning.report import report_dict
from amk.tuning.settings import TuneSettings, default_learning_kinds, tune_settings
from amk.tuning.state import TuneState
from amk.tuning.target import TuneTarget, default_state_path, target_id

OBJECTIVE_KIND = "python"  # the workload kind of an objective named by its function


@attrs.frozen
class TuneRun:
    """What ``amk.tune`` returns: the best config and its latency, the best-so-far curve, and the records
    this call appended (failures and A/B re-measurements included)."""

    best_config: dict[str, Any] | None  # None: no config passed
    best_latency_us: float | None  # the kept latency (after A/B re-measurement for measured objectives)
    curve: list[tuple[int, float | None]]  # (evaluation, best latency in us after it), one per evaluation
    records: list[Record]
    evaluations: int  # configs evaluated in the run (all sessions of a resumed run)
    verdicts: dict[str, int]  # evaluations per verdict
    stop_reason: str | None
    warm_start: list[str]  # where the seeds came from
    workload: Workload
    device: Device
    state_path: Path
    report: dict[str, Any]  # what ``amk tune`` writes as its JSON report
    result: TuneResult  # the engine's result: target, state, trials

    def evaluation_of(self, config: Mapping[str, Any]) -> int | None:
        """The first evaluation of this run that measured ``config`` (None: it was not evaluated)."""
        key = config_key(dict(self.result.target.space.canonical(config)))
        return next((t.evaluation for t in self.result.state.trials if t.key == key), None)


def workload_of(workload: Workload | str | None, shape: Mapping[str, Any] | None,
                objective: Objective | None) -> Workload:
    """The workload a caller names: a Workload, ``"kind:name"`` with ``shape``, or (None) the objective's
    ``python:<module>.<function>``; ValidationError otherwise."""
    if isinstance(workload, Workload):
        if shape:
            raise ValidationError("give the shape inside the Workload, or the workload as 'kind:name' with shape=.")
        return workload
    if workload is None and objective is not None:
        return Workload(OBJECTIVE_KIND, objective_name(objective), dict(shape or {}))
    kind, sep, name = str(workload).partition(":")
    if not sep or not kind or not name:
        raise ValidationError(f"workload {workload!r} must be 'kind:name' (e.g. 'matmul:my_kernel') or a Workload.")
    return Workload(kind, name, dict(shape or {}))


def objective_name(objective: Objective) -> str:
    """``<module>.<qualname>`` of a named function or method: the workload name its runs share. ValidationError
    for a lambda, a ``functools.partial`` or another callable without a name of its own, whose name would be
    shared by unrelated objectives (every lambda is ``<lambda>``) and pool their records."""
    qualname = getattr(objective, "__qualname__", None)
    if not isinstance(qualname, str) or "<lambda>" in qualname:
        raise ValidationError(f"amk cannot name a workload after {objective!r}: a lambda, a partial or a callable "
                              "object has no name of its own, so unrelated objectives would share their records. "
                              "Give workload='kind:name' (with shape=...), or tune a named function.")
    return f"{_module_name(objective)}.{qualname}"


def _module_name(objective: Objective) -> str:
    """The objective's module; for ``__main__`` (every script run as ``python script.py`` is ``__main__``, so
    unrelated scripts' ``objective`` functions would pool their records) the module ``python -m`` ran, else the
    script's file name without ``.py``. ValidationError for ``__main__`` without a file (a notebook, the REPL,
    ``python -c``): nothing there tells one such objective from another."""
    module = getattr(objective, "__module__", None) or "python"
    if module != "__main__":
        return module
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and getattr(spec, "name", None) and spec.name != "__main__":
        return str(spec.name)
    path = getattr(main, "__file__", None)
    if isinstance(path, str) and Path(path).stem:
        return Path(path).stem
    raise ValidationError(f"amk cannot name a workload after {objective.__qualname__!r}: it is defined in __main__ "
                          "without a file (a notebook, the REPL or python -c), where every session's functions "
                          "share one module name, so unrelated objectives would share their records. "
                          "Give workload='kind:name' (with shape=...), or tune a function from a file.")


def device_of(device: Device | str | None) -> Device:
    """A Device, a device name (``"h100"``, ``"NVIDIA A100-PCIE-40GB"``), or None / ``"local"``: detected
    (:func:`amk.backends.command.detect_device`)."""
    if isinstance(device, Device):
        return device
    if device is None or device == "local":
        from amk.backends.command import detect_device

        return detect_device()
    return resolve_device(device)


def _settings(config: AmkConfig, settings: TuneSettings | Mapping[str, Any] | None) -> TuneSettings:
    if isinstance(settings, TuneSettings):
        base = settings
    else:
        base = tune_settings(config)
        if settings:
            from amk.core.config import options_converter, structure_options

            merged = {**options_converter.unstructure(base), **dict(settings)}
            base = structure_options(TuneSettings, merged, where="amk.tune(settings=...)", label="[tune]")
    if base.isolation == "process":
        raise ConfigError("amk.tune runs a Python objective in this process (isolation 'thread'); a program that "
                          "may hang or crash belongs in the command backend (docs/tune.md), which runs it in a "
                          "process of its own.")
    return base


def tune(objective: Objective, space: SearchSpace | Mapping[str, Any], *, restrictions: list[Any] | None = None,
         workload: Workload | str | None = None, shape: Mapping[str, Any] | None = None,
         device: Device | str | None = None, budget: int | None = None, minutes: float | None = None,
         store: Store | str | None = None, unit: str = "ms", kind: str = "measured", resume: bool = False,
         seed: int = 0, settings: TuneSettings | Mapping[str, Any] | None = None, state_path: str | Path | None = None,
         config: str | Path | AmkConfig | None = None, progress: bool = False) -> TuneRun:
    """Tune ``objective`` over ``space`` with amk's loop; every evaluation is appended to the store.

    :param objective: ``objective(config: dict) -> latency`` in ``unit`` (a positive, finite number). Raise
        :class:`amk.core.errors.WrongAnswerError` for a wrong result (a FAIL record); any other exception is a
        CRASH record naming it, and a return value that is not a latency a CRASH record saying what it was.
    :param space: knob -> list of choices (Kernel Tuner's ``tune_params``; the first choice is the default),
        or an :class:`amk.core.space.SearchSpace`.
    :param restrictions: Kernel Tuner-style restrictions: expressions over the knobs
        (``"bx * by <= 256"``, evaluated safely, :mod:`amk.core.restrictions`) or callables over the config.
    :param workload: ``"kind:name"`` (with ``shape``) or a Workload; by default ``python:<module>.<function>``
        (a script's module is its file name: ``python:sort_tune.objective``), so runs of the same function
        warm-start each other (a lambda, a partial, or a function of a notebook or the REPL must be given one).
    :param device: a device name (``"h100"``), a Device, or None / ``"local"``: the GPU ``nvidia-smi`` lists
        first, else this machine's CPU.
    :param budget: evaluations (default: ``[tune] budget``); ``minutes``: wall-clock limit (alone: no
        evaluation limit).
    :param store: a Store (left open), a store URL (``"jsonl:corpus.jsonl"``), or None: the config file's store.
    :param unit: the objective's unit: ``"ns"``, ``"us"``, ``"ms"`` (default) or ``"s"``; records keep us.
    :param kind: ``"measured"`` (A/B re-measures a faster config before keeping it) or ``"predicted"``
        (a cost model: kept at once, and learns only from predictions).
    :param resume: continue the run whose state file is at ``state_path`` (default: one per target under
        ``[tune] state_dir``); records it appended and the state missed are taken back from the store. A
        run resumes only with the store, space, restrictions, unit and kind it started with (TuneStateError
        naming what differs otherwise, :mod:`amk.tuning.binding`).
    :param settings: ``[tune]`` keys over the config file's (``{"policy": "prior", "ab_rounds": 3}``) or a
        TuneSettings.
    :param config: the amk config file (or an AmkConfig); None: the usual search (``amk.toml``, ...).
    :param progress: show progress on stderr (a bar on a terminal, a line per evaluation otherwise).
    :return: a :class:`TuneRun`.
    :raises amk.core.errors.AmkError: bad space, workload, device, settings or store (the message says which).
    """
    app_config = config if isinstance(config, AmkConfig) else load_config(config)
    tune_cfg = _settings(app_config, settings)
    if minutes and budget is None:
        budget = 0  # minutes alone: as many evaluations as fit in the time
    target_workload = workload_of(workload, shape, objective)
    target_device = device_of(device)
    backend = ObjectiveBackend(objective, as_search_space(space, restrictions), unit=unit, kind=kind)
    path = Path(state_path) if state_path else default_state_path(tune_cfg, target_workload, target_device,
                                                                     backend.name)
    with opened_store(store, app_config) as opened:
        corpus = opened.columns()
        if resume:
            previous = TuneState.load(path, target_id(target_workload, target_device, backend.name))
            corpus = without_run(corpus, previous.run_id)
        from amk.core.featurizer import Featurizer
        from amk.core.ranker import Ranker

        target = TuneTarget.prepare(target_workload, target_device, backend, corpus, tune_cfg,
                                    featurizer=app_config.create(Featurizer), ranker=app_config.create(Ranker),
                                    kinds=default_learning_kinds(backend))
        total = budget if budget is not None else tune_cfg.budget
        bar = Progress(f"tune {target_workload.name}", total or len(target.candidates), unit="evaluations",
                       mode="auto" if progress else "off")
        result = run_loop(target, tune_cfg, seed=seed, budget=budget, minutes=minutes, store=opened,
                          state_path=path, resume=resume, progress=bar, registry=app_config.registry)
        where = opened.describe()
    report = report_dict(result, tune_cfg, where)
    return TuneRun(
        best_config=result.best_config(), best_latency_us=result.state.incumbent_us, curve=result.best_so_far(),
        records=list(result.records), evaluations=len(result.state.trials), verdicts=report["verdicts"],
        stop_reason=result.state.stop_reason, warm_start=list(result.state.warm_sources),
        workload=target_workload, device=target_device, state_path=path, report=report, result=result)
