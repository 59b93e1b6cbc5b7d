"""The tune loop: seeds first, then the ordering policy's picks, each gated and recorded.

``tune`` measures, seeds first, then the ordering policy's picks (:mod:`amk.tuning.policy`, retrained as
results arrive), never a config twice; each result passes the gates (correctness verdict, physical floor,
interleaved A/B keep/revert for measured backends, :mod:`amk.tuning.gates`) and is appended to the store
with its kind and verdict, failures included. The state file makes a killed run resumable
(:mod:`amk.tuning.state`).
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from amk.core.columns import CorpusColumns, config_key
from amk.core.errors import ConfigError, InvalidConfigError
from amk.core.plugins import Registry
from amk.core.records import Measurement, MeasurementKind, Provenance, Record, Verdict
from amk.core.store import CorpusQuery, Store
from amk.tuning.gates import ab_decision, floor_guard
from amk.tuning.isolation import Measurer, make_measurer
from amk.tuning.policy import OrderingPolicy, make_policy
from amk.tuning.progress import ProgressBar
from amk.tuning.settings import TuneSettings
from amk.tuning.state import Trial, TuneState
from amk.tuning.target import TuneTarget

log = logging.getLogger("amk.tuning")


@attrs.frozen
class TuneResult:
    target: TuneTarget
    state: TuneState
    records: list[Record]  # what this session appended (or would have, without a store)
    isolation: str = "thread"  # where the backend measured: "process" (a worker process) or "thread"
    adopted: int = 0  # on resume: evaluations taken back from the store that the state file had missed

    @property
    def best(self) -> Trial | None:
        kept = [t for t in self.state.trials if t.key == self.state.incumbent_key]
        return kept[-1] if kept else None

    def best_config(self) -> dict[str, Any] | None:
        if self.state.incumbent_key is None:
            return None
        return self.target.candidates[self.target.index[self.state.incumbent_key]]

    def best_so_far(self) -> list[tuple[int, float | None]]:
        """(evaluation, incumbent latency after it) for every evaluation."""
        out, best = [], None
        for t in self.state.trials:
            if t.kept:
                best = t.latency_us
            out.append((t.evaluation, best))
        return out

    def evaluations_to(self, threshold_us: float) -> int | None:
        """The first evaluation whose measured latency was within ``threshold_us`` (None: never)."""
        for t in self.state.trials:
            if t.verdict == Verdict.PASS.value and t.latency_us is not None and t.latency_us <= threshold_us:
                return t.evaluation
        return None


def without_run(corpus: CorpusColumns, run_id: str) -> CorpusColumns:
    """The corpus without the records a run wrote itself, so a resumed run learns from what it started with."""
    if corpus.source is None or len(corpus) == 0:
        return corpus
    prefix = f"amk tune {run_id} "
    mine = np.fromiter((isinstance(s, str) and s.startswith(prefix) for s in corpus.source), dtype=bool,
                       count=len(corpus))
    return corpus.take(~mine) if mine.any() else corpus


class _Session:
    """One tune session: the state, the policy rebuilt from it, and the record writer."""

    def __init__(self, target: TuneTarget, state: TuneState, settings: TuneSettings, store: Store | None,
                 state_path: Path | None, measurer: Measurer) -> None:
        self.target = target
        self.measurer = measurer
        self.state = state
        self.settings = settings
        self.store = store
        self.state_path = state_path
        self.records: list[Record] = []
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state.rng_state
        self.untried = np.ones(len(target.candidates), dtype=bool)
        self.policy: OrderingPolicy = make_policy(
            settings.policy, target.features, target.prior_scores, target.prior_uncertainty,
            exploration=settings.exploration, epsilon=settings.epsilon, kappa=settings.kappa, seed=state.seed,
            trees=settings.trees, base=target.base_scores, zero_shot=target.zero_shot)
        for trial in state.trials:
            self._mark(trial)
        self.started = time.monotonic()
        self.elapsed_before = state.elapsed_s

    def _mark(self, trial: Trial) -> None:
        i = self.target.index.get(trial.key)
        if i is None:
            return
        self.untried[i] = False
        passed = trial.verdict == Verdict.PASS.value and trial.latency_us
        self.policy.observe(i, math.log(trial.latency_us) if passed else None)

    @property
    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started

    def _record(self, knobs: Mapping[str, Any], measurement: Measurement, role: str, evaluation: int,
                kept: bool | None = None) -> None:
        target = self.target
        extra: dict[str, Any] = {"run": self.state.run_id, "evaluation": evaluation, "role": role}
        if kept is not None:
            extra["kept"] = kept
        record = Record(
            workload=target.workload, device=target.device,
            config=target.backend.record_config(target.workload, knobs), measurement=measurement,
            provenance=Provenance(backend=target.backend.name, backend_version=target.backend.version,
                                  timestamp=time.time(), notes=f"amk tune ({role})",
                                  source=f"amk tune {self.state.run_id} #{evaluation} {role}", extra=extra),
        )
        self.records.append(record)
        if self.store is not None:
            self.store.append([record])

    def _measure(self, knobs: Mapping[str, Any]) -> Measurement:
        timeout = self.settings.timeout_s or None
        m = self.measurer.measure(self.target.workload, self.target.device, knobs, timeout)
        self.state.measurements += 1
        return floor_guard(m, self.target.floor_us, self.settings.floor_tolerance)

    def _ab(self, incumbent: Mapping[str, Any], challenger: Mapping[str, Any], evaluation: int) -> tuple[bool, float]:
        inc, cha = [], []
        for r in range(self.settings.ab_rounds):
            pair = [("ab-incumbent", incumbent, inc), ("ab-challenger", challenger, cha)]
            for role, knobs, sink in (pair if r % 2 == 0 else pair[::-1]):
                m = self._measure(knobs)
                self._record(knobs, m, role, evaluation)
                if m.verdict is Verdict.PASS:
                    sink.append(m.latency_us)
        decision = ab_decision(inc, cha, min_gain=self.settings.min_gain, noise_factor=self.settings.ab_noise)
        log.info("evaluation %d: %s", evaluation, decision.reason)
        return decision.keep, decision.challenger_us or 0.0

    def step(self) -> Trial:
        state, target = self.state, self.target
        index = None
        while state.seed_queue and index is None:
            key = state.seed_queue.pop(0)
            i = target.index.get(key)
            if i is not None and self.untried[i]:
                index = i
        if index is None:
            index = self.policy.choose(self.untried, self.rng)
        knobs = target.candidates[index]
        evaluation = len(state.trials) + 1
        m = self._measure(knobs)
        kept = False
        latency = m.latency_us
        if m.verdict is Verdict.PASS and latency is not None:
            if state.incumbent_us is None:
                kept = True
            elif latency < state.incumbent_us * (1 - self.settings.min_gain):
                measured = target.backend.measurement_kind is MeasurementKind.MEASURED
                if measured and self.settings.ab_rounds > 0:
                    incumbent = target.candidates[target.index[state.incumbent_key]]
                    kept, ab_latency = self._ab(incumbent, knobs, evaluation)
                    latency = ab_latency if kept and ab_latency else latency
                else:
                    kept = True
        self._record(knobs, m, "candidate", evaluation, kept)
        trial = Trial(evaluation, target.keys[index], m.verdict.value, m.latency_us, kept, round(self.elapsed, 3))
        state.trials.append(trial)
        if kept:
            state.incumbent_key, state.incumbent_us = target.keys[index], latency
        self._mark(trial)
        self.save()
        return trial

    def save(self) -> None:
        self.state.rng_state = self.rng.bit_generator.state
        self.state.elapsed_s = round(self.elapsed, 3)
        if self.state_path is not None:
            self.state.save(self.state_path)


def _json_safe_rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return json.loads(json.dumps(rng.bit_generator.state))


def adopt_from_store(state: TuneState, target: TuneTarget, store: Store | None) -> int:
    """Take back candidate records of this run the state missed (killed between append and save)."""
    if store is None:
        return 0
    known = len(state.trials)
    found: dict[int, Record] = {}
    query = CorpusQuery(device=target.device.name, workload_kind=target.workload.kind,
                        workload_name=target.workload.name)
    for record in store.query(query):
        extra = record.provenance.extra
        if extra.get("run") == state.run_id and extra.get("role") == "candidate" and extra.get("evaluation", 0) > known:
            found[int(extra["evaluation"])] = record
    adopted = 0
    for evaluation in sorted(found):
        if evaluation != len(state.trials) + 1:
            break
        record = found[evaluation]
        try:
            key = config_key(target.space.canonical(target.backend.knob_config(target.workload, record.config)))
        except InvalidConfigError:
            break
        m = record.measurement
        kept = bool(record.provenance.extra.get("kept"))
        state.trials.append(Trial(evaluation, key, m.verdict.value, m.latency_us, kept, state.elapsed_s))
        if key in state.seed_queue:
            state.seed_queue.remove(key)
        if kept:
            state.incumbent_key, state.incumbent_us = key, m.latency_us
        adopted += 1
    return adopted


def new_state(target: TuneTarget, seed: int) -> TuneState:
    return TuneState(
        run_id=uuid.uuid4().hex[:12], target=target.target_id, seed=seed,
        rng_state=_json_safe_rng_state(np.random.default_rng(seed)),
        seed_queue=list(target.seeds), warm_sources=list(target.seed_sources),
    )


def tune(target: TuneTarget, settings: TuneSettings, *, seed: int = 0, budget: int | None = None,
         minutes: float | None = None, store: Store | None = None, state_path: Path | None = None,
         resume: bool = False, progress: ProgressBar | None = None, stop_at_us: float | None = None,
         registry: Registry | None = None, measurer: Measurer | None = None,
         should_stop: Callable[[], str | None] | None = None) -> TuneResult:
    """Run (or, with ``resume``, continue) the loop until ``budget`` evaluations or ``minutes`` have passed
    (or, with ``stop_at_us``, a config at least that fast was measured). In ``settings.isolation`` process
    mode, the worker rebuilds the backend through ``registry`` (the one it was created with; the
    process-wide registry by default).

    A host that runs the loop inside its own (a tuner calling amk as its search strategy) passes
    ``measurer`` to measure its own way (e.g. in the calling thread, where the host's device context
    lives) and ``should_stop``, asked before every evaluation: a reason stops the run (the host's budget)."""
    budget = settings.budget if budget is None else budget
    minutes = settings.minutes if minutes is None else minutes
    if budget <= 0 and minutes <= 0:
        raise ConfigError("give a budget of evaluations (--budget N) or a time limit (--minutes M) above 0.")
    if resume:
        if state_path is None:
            raise ConfigError("resuming needs the state file of the run; pass its path.")
        state = TuneState.load(state_path, target.target_id)
        state.sessions += 1
        state.stop_reason = None
        adopted = adopt_from_store(state, target, store)
    else:
        state = new_state(target, seed)
        adopted = 0
    measurer = measurer or make_measurer(target.backend, settings.isolation, registry)
    session = _Session(target, state, settings, store, state_path, measurer)
    session.save()
    limit_s = minutes * 60 if minutes > 0 else math.inf
    budget = budget if budget > 0 else len(target.candidates)
    progress = progress or ProgressBar(budget, enabled=False)
    progress.update(len(state.trials), state.incumbent_us)
    try:
        while True:
            if len(state.trials) >= budget:
                state.stop_reason = f"budget of {budget} evaluations reached"
                break
            if session.elapsed >= limit_s:
                state.stop_reason = f"time limit of {minutes:g} minutes reached"
                break
            if not session.untried.any():
                state.stop_reason = "every config of the search space was evaluated"
                break
            host_reason = should_stop() if should_stop else None
            if host_reason:
                state.stop_reason = host_reason
                break
            trial = session.step()
            if stop_at_us is not None and trial.verdict == "PASS" and trial.latency_us <= stop_at_us:
                state.stop_reason = f"a config within {stop_at_us:g} us was measured"
                break
            progress.update(len(state.trials), state.incumbent_us, trial.verdict if trial.verdict != "PASS" else "")
    finally:
        measurer.close()
        progress.close()
    session.save()
    return TuneResult(target, state, session.records, measurer.mode, adopted)
