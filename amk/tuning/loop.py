"""The tune loop: seeds first, then the ordering policy's picks, each gated and recorded.

``tune`` measures, seeds first, then the ordering policy's picks (:mod:`amk.tuning.policy`, retrained as
results arrive), never a config twice (nor, for a deterministic backend, one the corpus holds from it); each result passes the gates (correctness verdict, physical floor,
interleaved A/B keep/revert for measured backends, :mod:`amk.tuning.gates`) and is appended to the store
with its kind and verdict, failures included. The state file makes a killed run resumable
(:mod:`amk.tuning.state`).
"""

from __future__ import annotations

import contextlib
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

from amk.core.backend import Backend
from amk.core.columns import CorpusColumns, config_key
from amk.core.errors import ConfigError, Interrupted, InvalidConfigError, TuneStateError
from amk.core.plugins import Registry
from amk.core.records import Measurement, MeasurementKind, Provenance, Record, Verdict
from amk.core.store import CorpusQuery, Store
from amk.tuning.binding import RunBinding, binding_of, check_binding, store_identity
from amk.tuning.gates import ab_decision, floor_guard
from amk.tuning.isolation import Measurer, make_measurer
from amk.tuning.policy import OrderingPolicy, make_policy
from amk.tuning.progress import Progress
from amk.tuning.settings import TuneSettings
from amk.tuning.state import Trial, TuneState, run_lock
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
        """(evaluation, incumbent latency after it) for every evaluation; the run starts from the best
        result it took from the corpus (``state.known_best_us``), if any."""
        out, best = [], self.state.known_best_us
        for t in self.state.trials:
            if t.kept:
                best = t.kept_us if t.kept_us is not None else t.latency_us
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


@attrs.frozen
class KnownResult:
    """A config's result this run takes from the corpus instead of evaluating it."""

    verdict: Verdict
    latency_us: float | None
    source: str  # the record's provenance source, for messages


def takes_known_results(backend: Backend, settings: TuneSettings) -> bool:
    """Whether a run takes recorded results of its backend instead of evaluating again: always for a
    deterministic backend (roofline, replay), for a measuring one only with ``[tune] remeasure = false``."""
    return backend.deterministic or not settings.remeasure


def known_results(target: TuneTarget, store: Store | None, exclude_run: str | None = None) -> dict[int, KnownResult]:
    """Candidate index -> the result the corpus holds for it from this target's backend and version (same
    workload, shape and device), leaving out run ``exclude_run``'s own records. Several samples of one
    config: its fastest PASS (a deterministic backend gives one result; for a measured one, best-of)."""
    if store is None:
        return {}
    backend, workload = target.backend, target.workload
    query = CorpusQuery(device=target.device.name, workload_kind=workload.kind, workload_name=workload.name,
                        workload_shape=workload.shape, kind=backend.measurement_kind)
    own = f"amk tune {exclude_run} " if exclude_run else None
    out: dict[int, KnownResult] = {}
    if store.count(query) == 0:  # from the store's columns where it keeps them: no record is parsed
        return out
    for record in store.query(query):
        provenance = record.provenance
        if provenance.backend != backend.name or provenance.backend_version != backend.version:
            continue
        if own and (provenance.source or "").startswith(own):
            continue
        try:
            key = config_key(target.space.canonical(backend.knob_config(workload, record.config)))
        except InvalidConfigError:
            continue
        i = target.index.get(key)
        if i is None:
            continue
        m = record.measurement
        passed = m.verdict is Verdict.PASS and m.latency_us is not None
        held = out.get(i)
        if held is None or (passed and (held.latency_us is None or m.latency_us < held.latency_us)):
            out[i] = KnownResult(m.verdict, m.latency_us if passed else None, provenance.source or "the corpus")
    return out


class _Session:
    """One tune session: the state, the policy rebuilt from it, and the record writer."""

    def __init__(self, target: TuneTarget, state: TuneState, settings: TuneSettings, store: Store | None,
                 state_path: Path | None, measurer: Measurer, known: Mapping[int, KnownResult],
                 replay: dict[int, Replayed] | None = None) -> None:
        self.target = target
        self.replay = dict(replay or {})  # evaluation -> what the store recorded of it (see records_to_replay)
        self.replayed = 0
        self.measurer = measurer
        self.state = state
        self.settings = settings
        self.store = store
        self.state_path = state_path
        self.records: list[Record] = []
        self._identity_taken = False
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state.rng_state
        self.untried = np.ones(len(target.candidates), dtype=bool)
        self.policy: OrderingPolicy = make_policy(
            settings.policy, target.features, target.prior_scores, target.prior_uncertainty,
            exploration=settings.exploration, epsilon=settings.epsilon, kappa=settings.kappa, seed=state.seed,
            trees=settings.trees, base=target.base_scores, zero_shot=target.zero_shot)
        for i, result in known.items():  # taken from the corpus: learned from, never evaluated again
            self.untried[i] = False
            self.policy.observe(i, math.log(result.latency_us) if result.latency_us else None)
        for trial in state.trials:
            self._mark(trial)
        self.started = time.monotonic()
        self.elapsed_before = state.elapsed_s
        self._completed = self._as_completed()

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
                kept: bool | None = None, incumbent_us: float | None = None) -> None:
        target = self.target
        extra: dict[str, Any] = {"run": self.state.run_id, "evaluation": evaluation, "role": role}
        if kept is not None:
            extra["kept"] = kept
        if incumbent_us is not None:
            extra["incumbent_us"] = incumbent_us  # the latency the run kept it at (its A/B median after one)
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

    def _ab(self, incumbent: Mapping[str, Any], challenger: Mapping[str, Any], evaluation: int,
            replayed: Replayed | None = None) -> tuple[bool, float]:
        inc, cha = [], []
        if replayed is not None:  # the A/B measurements the store holds, in the order they were made
            for role, m in replayed.ab:
                self.state.measurements += 1
                if m.verdict is Verdict.PASS:
                    (inc if role == "ab-incumbent" else cha).append(m.latency_us)
        else:
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
        replayed = self.replay.pop(evaluation, None)
        if replayed is not None and replayed.key != target.keys[index]:
            log.warning("evaluation %d: the store's record is of another config than this run picks; measuring it "
                        "again (and every later one)", evaluation)
            self.replay.clear()
            replayed = None
        if replayed is not None:  # measured before a kill, recorded, but not yet in the state: taken back
            m = replayed.candidate
            state.measurements += 1
            self.replayed += 1
        else:
            m = self._measure(knobs)
        kept = False
        latency = m.latency_us
        if m.verdict is Verdict.PASS and latency is not None:
            if state.incumbent_us is None:
                kept = True
            else:
                measured = target.backend.measurement_kind is MeasurementKind.MEASURED
                # min_gain guards against noise: a prediction or a replay has none, so any gain is kept
                if latency < state.incumbent_us * (1 - (self.settings.min_gain if measured else 0.0)):
                    if measured and self.settings.ab_rounds > 0:
                        incumbent = target.candidates[target.index[state.incumbent_key]]
                        kept, ab_latency = self._ab(incumbent, knobs, evaluation, replayed)
                        latency = ab_latency if kept and ab_latency else latency
                    else:
                        kept = True
        if replayed is None:
            self._record(knobs, m, "candidate", evaluation, kept, latency if kept else None)
        trial = Trial(evaluation, target.keys[index], m.verdict.value, m.latency_us, kept, round(self.elapsed, 3),
                      kept_us=latency if kept and latency != m.latency_us else None)
        state.trials.append(trial)
        if kept:
            state.incumbent_key, state.incumbent_us = target.keys[index], latency
        self._mark(trial)
        self.save()
        return trial

    def save(self) -> None:
        if self.records and not self._identity_taken and self.store is not None and self.state.bound is not None:
            # A store may only have its lasting identity once it holds a record (a JSONL file is created by
            # its first append): what a resume compares.
            self.state.bound.store_identity = store_identity(self.store)
            self._identity_taken = True
        self.state.rng_state = self.rng.bit_generator.state
        self.state.elapsed_s = round(self.elapsed, 3)
        self._completed = self._as_completed()
        if self.state_path is not None:
            self.state.save(self.state_path)

    def _as_completed(self) -> tuple[dict[str, Any], list[str], int]:
        """What an evaluation changes in the state before its trial is in it: the random state, the seed
        queue and the measurement count."""
        return self.rng.bit_generator.state, list(self.state.seed_queue), self.state.measurements

    def save_interrupted(self) -> None:
        """Save the state as of the last completed evaluation (Ctrl-C): the evaluation cut short chose its
        config with the random state and seed queue it had then, so ``--resume`` chooses it again and takes
        back from the store what it recorded, as after a kill, instead of choosing another config."""
        self.state.rng_state, self.state.seed_queue, self.state.measurements = self._completed
        self.state.elapsed_s = round(self.elapsed, 3)
        if self.state_path is not None:
            self.state.save(self.state_path)


def _json_safe_rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return json.loads(json.dumps(rng.bit_generator.state))


@attrs.frozen
class Replayed:
    """What the store recorded of one evaluation a killed run measured but its state file did not yet hold."""

    key: str  # the candidate's config key
    candidate: Measurement
    ab: tuple[tuple[str, Measurement], ...]  # (role, measurement) of its A/B re-measurements, in order


def adopt_from_store(state: TuneState, target: TuneTarget, store: Store | None,
                     ab_rounds: int = 0) -> dict[int, Replayed]:
    """The evaluations of this run that the store holds and the state missed (a kill between the append and the
    save), from the next one on without a gap: evaluation -> what was recorded of it.

    The resumed run replays them in order: it picks each as the uninterrupted run did (the same policy and
    random state), takes the recorded measurement instead of measuring, and re-decides an A/B from the
    recorded re-measurements (the ``2 * ab_rounds`` made just before the candidate's record: those of an
    attempt killed mid-A/B come earlier and are left out). So the resumed incumbent, tried set and A/B
    results are those of the uninterrupted run, and nothing is measured twice.

    Raises TuneStateError when the store lacks the record of an evaluation the state holds (the file was
    deleted or replaced at the same path, a memory store of another process): the run's best would be
    reported from a store holding no record of it.
    """
    if store is None:
        return {}
    known = len(state.trials)
    candidates: dict[int, tuple[Record, list[Record]]] = {}
    ab_seen: dict[int, list[Record]] = {}
    held: set[int] = set()
    query = CorpusQuery(device=target.device.name, workload_kind=target.workload.kind,
                        workload_name=target.workload.name)
    for record in store.query(query):
        extra = record.provenance.extra
        evaluation = extra.get("evaluation")
        if extra.get("run") != state.run_id or type(evaluation) is not int:
            continue
        if evaluation <= known:
            if extra.get("role") == "candidate":
                held.add(evaluation)
            continue
        if extra.get("role") in ("ab-incumbent", "ab-challenger"):
            ab_seen.setdefault(evaluation, []).append(record)
        elif extra.get("role") == "candidate":
            ab = ab_seen.pop(evaluation, [])
            candidates[evaluation] = (record, ab[len(ab) - 2 * ab_rounds:] if ab_rounds else [])
    if len(held) < known:
        raise TuneStateError(
            f"the store {store.describe()} holds no record of {known - len(held)} of the {known} evaluation(s) of "
            f"run {state.run_id} that its tune state holds (was it deleted or replaced?); resume with the store "
            "the run appended to, or start a new run without --resume (resume=False in amk.tune).")
    out: dict[int, Replayed] = {}
    for evaluation in sorted(candidates):
        if evaluation != known + len(out) + 1:
            break
        record, ab = candidates[evaluation]
        try:
            key = config_key(target.space.canonical(target.backend.knob_config(target.workload, record.config)))
        except InvalidConfigError:
            break
        out[evaluation] = Replayed(key, record.measurement,
                                   tuple((r.provenance.extra["role"], r.measurement) for r in ab))
    return out


def _start_from_known(state: TuneState, target: TuneTarget, known: Mapping[int, KnownResult]) -> None:
    """Count the results taken from the corpus; a run with no incumbent yet starts from their best."""
    state.known = len(known)
    passed = [(r.latency_us, i) for i, r in known.items() if r.latency_us is not None]
    if not passed:
        return
    best_us, i = min(passed)
    if state.known_best_us is None or best_us < state.known_best_us:
        state.known_best_us, state.known_best_source = best_us, known[i].source
    if state.incumbent_us is None or best_us < state.incumbent_us:
        state.incumbent_key, state.incumbent_us = target.keys[i], best_us


def new_state(target: TuneTarget, seed: int, bound: RunBinding | None = None) -> TuneState:
    return TuneState(
        run_id=uuid.uuid4().hex[:12], target=target.target_id, seed=seed,
        rng_state=_json_safe_rng_state(np.random.default_rng(seed)),
        seed_queue=list(target.seeds), warm_sources=list(target.seed_sources), bound=bound,
    )


def progress_status(state: TuneState, target: TuneTarget, last: Trial | None = None) -> str:
    """The incumbent as a progress bar shows it: ``best 12.345 us (predicted, evaluation 7)``."""
    if state.incumbent_us is None:
        text = "no passing config yet"
    else:
        kept = [t.evaluation for t in state.trials if t.key == state.incumbent_key]
        where = f"evaluation {kept[-1]}" if kept else "from the corpus"
        text = f"best {state.incumbent_us:,.3f} us ({target.backend.measurement_kind.value}, {where})"
    if last is not None and last.verdict != Verdict.PASS.value:
        text += f"; last {last.verdict}"
    return text


def tune(target: TuneTarget, settings: TuneSettings, *, seed: int = 0, budget: int | None = None,
         minutes: float | None = None, store: Store | None = None, state_path: Path | None = None,
         resume: bool = False, progress: Progress | None = None, stop_at_us: float | None = None,
         registry: Registry | None = None, measurer: Measurer | None = None,
         should_stop: Callable[[], str | None] | None = None) -> TuneResult:
    """Run (or, with ``resume``, continue) the loop until ``budget`` evaluations or ``minutes`` have passed
    (or, with ``stop_at_us``, a config at least that fast was measured). In ``settings.isolation`` process
    mode, the worker rebuilds the backend through ``registry`` (the one it was created with; the
    process-wide registry by default).

    With a deterministic backend (or ``settings.remeasure`` false), configs ``store`` already holds from
    this backend and version for the target are not evaluated: their results are learned from and the
    incumbent starts at their best (``state.known``, ``state.known_best_us``). ``progress`` gets the
    evaluations done and the incumbent after each one. Ctrl-C raises :class:`~amk.core.errors.Interrupted`
    (a KeyboardInterrupt) whose ``result`` is the run so far, its state saved for ``resume``.

    A host that runs the loop inside its own (a tuner calling amk as its search strategy) passes
    ``measurer`` to measure its own way (e.g. in the calling thread, where the host's device context
    lives) and ``should_stop``, asked before every evaluation: a reason stops the run (the host's budget)."""
    budget = settings.budget if budget is None else budget
    minutes = settings.minutes if minutes is None else minutes
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise ConfigError(f"the budget {budget!r} must be a whole number of evaluations, 0 or more.")
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not (math.isfinite(minutes)
                                                                                  and minutes >= 0):
        raise ConfigError(f"the time limit {minutes!r} must be a number of minutes, 0 or more.")
    if budget <= 0 and minutes <= 0:
        raise ConfigError("give a budget of evaluations (--budget N) or a time limit (--minutes M) above 0.")
    with run_lock(state_path) if state_path is not None else contextlib.nullcontext():
        return _tune(target, settings, seed, budget, minutes, store, state_path, resume, progress, stop_at_us,
                     registry, measurer, should_stop)


def _tune(target: TuneTarget, settings: TuneSettings, seed: int, budget: int, minutes: float, store: Store | None,
          state_path: Path | None, resume: bool, progress: Progress | None, stop_at_us: float | None,
          registry: Registry | None, measurer: Measurer | None,
          should_stop: Callable[[], str | None] | None) -> TuneResult:
    if resume:
        if state_path is None:
            raise ConfigError("resuming needs the state file of the run; pass its path.")
        state = TuneState.load(state_path, target.target_id)
        bound = binding_of(target, store)
        check_binding(state.bound, bound, state_path)
        state.bound = bound  # the same inputs, as this session names them (a file its first record created)
        state.sessions += 1
        state.stop_reason = None
        replay = adopt_from_store(state, target, store, settings.ab_rounds)
    else:
        state = new_state(target, seed, binding_of(target, store))
        replay = {}
    known = known_results(target, store, state.run_id) if takes_known_results(target.backend, settings) else {}
    _start_from_known(state, target, known)
    measurer = measurer or make_measurer(target.backend, settings.isolation, registry)
    session = _Session(target, state, settings, store, state_path, measurer, known, replay)
    session.save()
    limit_s = minutes * 60 if minutes > 0 else math.inf
    budget = budget if budget > 0 else len(target.candidates)
    progress = progress or Progress("tune", budget, mode="off")
    progress.update(len(state.trials), progress_status(state, target))
    try:
        while True:
            if len(state.trials) >= budget:
                state.stop_reason = f"budget of {budget} evaluations reached"
                break
            if session.elapsed >= limit_s:
                state.stop_reason = f"time limit of {minutes:g} minutes reached"
                break
            if not session.untried.any():
                state.stop_reason = ("every config of the search space was evaluated" if not known else
                                     "every config of the search space was evaluated or taken from the corpus")
                break
            host_reason = should_stop() if should_stop else None
            if host_reason:
                state.stop_reason = host_reason
                break
            trial = session.step()
            if stop_at_us is not None and trial.verdict == "PASS" and trial.latency_us <= stop_at_us:
                state.stop_reason = f"a config within {stop_at_us:g} us was measured"
                break
            progress.update(len(state.trials), progress_status(state, target, trial))
    except KeyboardInterrupt as exc:
        # Ctrl-C: what was measured is in the store and the state file (saved after every evaluation); a
        # measurement cut short is not recorded. The caller gets the run so far to report it.
        state.stop_reason = "interrupted (Ctrl-C)"
        session.save_interrupted()
        raise Interrupted(TuneResult(target, state, session.records, measurer.mode, session.replayed),
                          "tune run interrupted") from exc
    finally:
        measurer.close()
        progress.close()
    session.save()
    return TuneResult(target, state, session.records, measurer.mode, session.replayed)
