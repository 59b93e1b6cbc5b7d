"""Every point a Kernel Tuner run evaluates, appended to an amk store as it arrives.

Kernel Tuner's observers are only called around a benchmark, so they miss simulation, configs served
from Kernel Tuner's own cache and configs that failed to compile. amk wraps the runner instead:
``runner.run`` is replaced on the runner instance for the length of the run (an attribute, not a
proxy object: Kernel Tuner 1.3's cost function writes attributes on the runner that the runner reads
back). Every config the runner evaluates becomes one record, appended before ``run`` returns, so a run
killed later loses nothing already measured:

- a measurement on the device: kind ``measured``; a replay under ``tune_cache`` / ``simulation_mode``:
  kind ``replayed``; a config served from Kernel Tuner's cache file (measured by an earlier session):
  ``measured``, with ``cache_hit`` in ``provenance.extra``, and left out when the store already holds
  that measurement (same config and Kernel Tuner timestamp);
- a failure (``InvalidConfig``, ``CompilationFailedConfig``, ``RuntimeFailedConfig``) gets the importer's
  verdict with the marker as reason; an error Kernel Tuner does not classify aborts its run: the config
  that raised is recorded as a CRASH with the error, then the error goes on to the caller;
- a config evaluated again in the same run (Kernel Tuner's strategies revisit; a revisit is served from
  memory) is recorded once.

A record reads like an imported cache entry (:mod:`amk.formats.kernel_tuner`): latency = median of the
entry's ``times`` (else ``time``), ``provenance.extra["entry"]`` keeps the entry's other fields and
``["header"]`` the parameter order and objective, so ``amk corpus export --format kernel-tuner`` writes
the cache back. ``provenance.timestamp`` is Kernel Tuner's timestamp of the measurement.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs

from amk.core.columns import config_key
from amk.core.config import opened_store
from amk.core.devices import Device
from amk.core.records import Measurement, MeasurementKind, Provenance, Record, Verdict
from amk.core.store import CorpusQuery, Store
from amk.core.workload import Workload
from amk.formats.kernel_tuner import BACKEND_NAME, FAILURE_VERDICTS, entry_measurement
from amk.formats.values import parse_timestamp

from . import compat
from ._values import json_safe

# Fields of a result that describe this run, not the measurement (they differ between a measurement and
# a later cache hit of it): left out of the record.
_RUN_FIELDS = frozenset({"strategy_time", "framework_time", "timestamp", "__error__"})


def result_measurement(result: Mapping[str, Any], objective_name: str, kind: MeasurementKind) -> Measurement:
    """The measurement of one Kernel Tuner result (a runner's result dict or a cache entry)."""
    marker = compat.failure_marker(result, objective_name)
    if marker is not None:
        return Measurement(verdict=FAILURE_VERDICTS.get(marker, Verdict.FAIL), kind=kind, reason=marker)
    entry = {k: json_safe(result[k]) for k in ("time", "times") if k in result}
    try:
        return attrs.evolve(entry_measurement(entry), kind=kind)
    except ValueError as exc:
        return Measurement(verdict=Verdict.FAIL, kind=kind, reason=f"Kernel Tuner's result has no usable time: {exc}")


@attrs.frozen
class RunLabel:
    """What every record of one Kernel Tuner run shares."""

    strategy: str  # the strategy's name ("amk", "diff_evo", ...)
    run_id: str = attrs.field(factory=lambda: uuid.uuid4().hex[:12])


# Kernel Tuner's check of ``answer`` / ``verify`` (kernel_tuner/core.py, every version amk supports) raises this.
_VERIFICATION_FAILED = "Kernel result verification failed"


def abort_measurement(exc: Exception, kind: MeasurementKind) -> Measurement:
    """The measurement of the config whose evaluation raised ``exc`` and ended the run: a failed check of
    the kernel's result (``answer=``, ``verify=``) is FAIL, a wrong answer as everywhere in amk; any other
    error a CRASH naming it."""
    text = f"Kernel Tuner stopped the run: {type(exc).__name__}: {exc}"[:500]
    if isinstance(exc, RuntimeError) and str(exc).startswith(_VERIFICATION_FAILED):
        return Measurement(verdict=Verdict.FAIL, kind=kind, reason=f"wrong answer: {text}"[:500])
    return Measurement(verdict=Verdict.CRASH, kind=kind, reason=text)


class RunRecorder:
    """Turns what a Kernel Tuner runner evaluates into records and appends them to ``store`` (None: keeps
    them in ``records`` only)."""

    def __init__(self, store: Store | None, workload: Workload, device: Device, tuning_options: Any,
                 param_names: Sequence[str], label: RunLabel, *, simulation: bool) -> None:
        self.store = store
        self.workload = workload
        self.device = device
        self.tuning_options = tuning_options
        self.param_names = list(param_names)
        self.label = label
        self.kind = MeasurementKind.REPLAYED if simulation else MeasurementKind.MEASURED
        self.simulation = simulation
        self.objective_name, _ = compat.objective(tuning_options)
        self.records: list[Record] = []
        self.left_out_known = 0  # cache hits the store already held
        self._seen: set[str] = set()
        self._stored: set[tuple[str, float | None]] | None = None
        self._header: dict[str, Any] = {"tune_params_keys": self.param_names, "objective": self.objective_name}

    @property
    def evaluated(self) -> int:
        """Distinct configs Kernel Tuner evaluated in this run (recorded, or already in the store)."""
        return len(self._seen)

    # -- wrapping the runner ------------------------------------------------------------------------
    @contextlib.contextmanager
    def attached(self, runner: Any) -> Iterator[RunRecorder]:
        """Record every ``runner.run`` call while the block runs."""
        inner, previous = runner.run, runner.__dict__.get("run")  # previous: another wrapper's, if any
        self._header["device_name"] = compat.device_name(runner)

        def run(parameter_space, tuning_options):
            return self._run(inner, parameter_space, tuning_options)

        runner.run = run
        try:
            yield self
        finally:
            if runner.__dict__.get("run") is run:
                if previous is None:
                    del runner.run  # the class's method again
                else:
                    runner.run = previous

    def _run(self, inner, parameter_space, tuning_options):
        configs = [tuple(c) for c in parameter_space]
        keys = [",".join(str(v) for v in c) for c in configs]
        cache = self._cache()
        cached_before = [k in cache for k in keys]
        try:
            results = inner(configs, tuning_options)
        except Exception as exc:
            self._record_abort(configs, keys, cached_before, exc)
            raise
        batch = []
        for config, key, hit, result in zip(configs, keys, cached_before, results):
            if result is None or key in self._seen:  # not evaluated (budget spent), or a revisit
                continue
            self._seen.add(key)
            hit = hit and not self.simulation
            entry = cache.get(key, result) if hit else result
            record = self._record(config, entry, cache_hit=hit)
            if hit and self._already_stored(record):
                self.left_out_known += 1
                continue
            batch.append(record)
        self._append(batch)
        return results

    def _cache(self) -> Mapping[str, Any]:
        cache = getattr(self.tuning_options, "cache", None)
        return cache if isinstance(cache, Mapping) else {}

    def _record_abort(self, configs, keys, cached_before, exc: Exception) -> None:
        """Kernel Tuner raised mid-batch: record what it measured before, and the config that raised."""
        cache = self._cache()
        batch = []
        for config, key, hit in zip(configs, keys, cached_before):
            if key in self._seen:
                continue
            if not hit and key in cache:  # measured (and cached) before the error
                self._seen.add(key)
                batch.append(self._record(config, cache[key], cache_hit=False))
                continue
            if not hit:
                self._seen.add(key)
                measurement = abort_measurement(exc, self.kind)
                batch.append(self._make(config, measurement, {}, time.time(), cache_hit=False))
            break
        self._append(batch)

    # -- records ----------------------------------------------------------------------------------
    def _record(self, config: Sequence[Any], entry: Mapping[str, Any], *, cache_hit: bool) -> Record:
        measurement = result_measurement(entry, self.objective_name, self.kind)
        extra = {k: json_safe(v) for k, v in entry.items()
                 if k not in _RUN_FIELDS and k != "time" and k not in self.param_names}
        if measurement.verdict is Verdict.PASS and isinstance(json_safe(entry.get("time")), (int, float)):
            extra["kernel_tuner_time_ms"] = json_safe(entry["time"])
        stamp, _readable = parse_timestamp(entry.get("timestamp"))
        return self._make(config, measurement, extra, stamp if stamp is not None else time.time(), cache_hit=cache_hit)

    def _make(self, config: Sequence[Any], measurement: Measurement, entry_extra: dict[str, Any],
              timestamp: float, *, cache_hit: bool) -> Record:
        n = len(self._seen)  # this config's place among the distinct configs of the run
        provenance = Provenance(
            backend=BACKEND_NAME, backend_version=compat.version(), timestamp=timestamp,
            notes=f"Kernel Tuner run, strategy {self.label.strategy}",
            source=f"kernel_tuner run {self.label.run_id} #{n}",
            extra={"entry": entry_extra, "header": self._header, "run": self.label.run_id,
                   "strategy": self.label.strategy, "cache_hit": cache_hit},
        )
        record = Record(workload=self.workload, device=self.device,
                        config={name: json_safe(v) for name, v in zip(self.param_names, config)},
                        measurement=measurement, provenance=provenance)
        return record

    def _already_stored(self, record: Record) -> bool:
        if self.store is None:
            return False
        if self._stored is None:
            query = CorpusQuery(device=self.device.name, workload_kind=self.workload.kind,
                                workload_name=self.workload.name, kind=MeasurementKind.MEASURED)
            self._stored = {(config_key(r.config), r.provenance.timestamp) for r in self.store.query(query)
                            if r.workload == self.workload}
        return (config_key(record.config), record.provenance.timestamp) in self._stored

    def _append(self, batch: list[Record]) -> None:
        if batch and self.store is not None:
            self.store.append(batch)
        self.records += batch


def kernel_tuner_strategy(strategy: str | Any) -> Any:
    """Kernel Tuner's strategy module of that name (a strategy object is returned as it is); ConfigError
    naming the installed strategies when there is none of that name."""
    if not isinstance(strategy, str):
        return strategy
    from kernel_tuner.interface import strategy_map

    if strategy not in strategy_map:
        from amk.core.errors import ConfigError

        raise ConfigError(f"Kernel Tuner {compat.version()} has no strategy {strategy!r}; "
                          f"its strategies are {sorted(strategy_map)}.")
    return strategy_map[strategy]


class RecordingStrategy:
    """Run one of Kernel Tuner's own strategies and record every point it evaluates into amk.

    ``tune_kernel(..., strategy=RecordingStrategy("diff_evo", store="sqlite:corpus.db"))``: the search is
    Kernel Tuner's (its ``strategy_options`` go to it unchanged), the records amk's (see the module
    docstring). ``store``: a store URL, a Store, or None for the store amk's config selects.
    ``device``: the device name to record (default: what Kernel Tuner reports; this machine's CPU for
    its C backend). After a run, ``records`` holds what was recorded and ``left_out_known`` how many
    configs served from Kernel Tuner's cache the store already held. Hashable, as Kernel Tuner needs.
    """

    def __init__(self, strategy: str | Any = "random_sample", *, store: str | Store | None = None,
                 device: str | Device | None = None) -> None:
        self.strategy = strategy
        self.store = store
        self.device = device
        self.records: list[Record] = []
        self.left_out_known = 0

    @property
    def name(self) -> str:
        return self.strategy if isinstance(self.strategy, str) else type(self.strategy).__name__

    def _inner(self) -> Any:
        return kernel_tuner_strategy(self.strategy)

    def tune(self, searchspace: Any, runner: Any, tuning_options: Any) -> list[dict[str, Any]]:
        """Kernel Tuner's strategy interface: run the wrapped strategy, recording as it goes."""
        from .naming import device_of, workload_of

        compat.require_kernel_tuner()
        inner = self._inner()
        workload, device = workload_of(runner, tuning_options), device_of(runner, self.device)
        with opened_store(self.store) as store:
            recorder = RunRecorder(store, workload, device, tuning_options, searchspace.param_names,
                                   RunLabel(self.name), simulation=bool(runner.simulation_mode))
            try:
                with recorder.attached(runner):
                    return inner.tune(searchspace, runner, tuning_options)
            finally:
                self.records, self.left_out_known = recorder.records, recorder.left_out_known
