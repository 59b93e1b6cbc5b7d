"""A tune target: everything about one (workload, device, backend) the loop computes once.

``TuneTarget.prepare`` builds the backend's search space (one canonical config per distinct kernel), the
warm-start seeds from the corpus, the prior's scores and the transfer features (what the corpus measured
for the same config on other devices).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from amk.core.backend import Backend
from amk.core.columns import CorpusColumns, config_key
from amk.core.devices import Device
from amk.core.errors import AmkError, InvalidConfigError
from amk.core.records import MeasurementKind
from amk.core.space import SearchSpace
from amk.core.workload import Workload
from amk.prior.distance import device_distance
from amk.prior.ranking import make_ranker
from amk.prior.similarity import device_similarity
from amk.prior.training import DEFAULT_KINDS
from amk.prior.transfer import Sources, transfer_sources, zero_shot
from amk.prior.warm_start import cold_start_reason, warm_start
from amk.tuning.settings import TuneSettings

log = logging.getLogger("amk.tuning")


def _knob_features(space: SearchSpace, candidates: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Numeric knobs as their value, other knobs as the index of their value among the choices."""
    columns = []
    for knob in space.knobs:
        numeric = all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in knob.choices)
        if numeric:
            columns.append([float(c[knob.name]) for c in candidates])
        else:
            order = {config_key({"v": v}): i for i, v in enumerate(knob.choices)}
            columns.append([float(order.get(config_key({"v": c[knob.name]}), -1)) for c in candidates])
    return np.asarray(columns, dtype=np.float64).T.reshape(len(candidates), len(space.knobs))


def portfolio_warm_start(workload: Workload, device: Device, corpus: CorpusColumns, settings: TuneSettings,
                         kinds: Sequence[MeasurementKind]) -> list:
    """The corpus's warm-start seeds, best first, with room for ones the search space refuses.

    With rows for the target device, its own best configs. Without, seeds are taken in turn from each
    device that has rows (one config good on each of them is worth more than three from a single device
    that may not transfer), devices of the target's architecture first, then the most similar by specs:
    similar specs on another architecture transfer worse than the same architecture.
    """
    k = max(settings.warm_start * 4, settings.warm_start)
    # The caller checks each seed against the target's search space (warm_start would check it against
    # each seed's own device).
    seeds = warm_start(workload, device, corpus, k=k, shape_radius=settings.shape_radius, kinds=kinds)
    if not seeds or seeds[0].device == device.name:
        return seeds
    if settings.transfer and measured_elsewhere(corpus, workload, device, kinds):
        return []  # the other devices' zero-shot order of this very workload seeds instead (TuneTarget.prepare)
    others = [d for d in corpus.devices if d.name != device.name]
    distance = device_distance(device, others) if others else np.zeros(0)
    order = sorted(range(len(others)),
                   key=lambda i: (device.arch is None or others[i].arch != device.arch, distance[i], others[i].name))
    per_device = [warm_start(workload, others[i].name, corpus, k=k, shape_radius=settings.shape_radius,
                             kinds=kinds) for i in order]
    merged = []
    for rank in range(k):
        merged += [seeds_of[rank] for seeds_of in per_device if rank < len(seeds_of)]
    return merged


def measured_elsewhere(corpus: CorpusColumns, workload: Workload, device: Device,
                       kinds: Sequence[MeasurementKind]) -> bool:
    """Whether a device other than ``device`` has records of exactly ``workload`` (of ``kinds``)."""
    if len(corpus) == 0:
        return False
    same = [i for i, w in enumerate(corpus.workloads) if w.key == workload.key]
    others = [i for i, d in enumerate(corpus.devices) if d.name != device.name]
    return bool((np.isin(corpus.workload_index, same) & np.isin(corpus.device_index, others)
                 & corpus.mask(kinds=tuple(kinds))).any())


def _impute(block: np.ndarray) -> np.ndarray:
    """Unknown entries (NaN) as their column's median; columns with nothing known dropped."""
    known = ~np.isnan(block).all(axis=0)
    block = block[:, known]
    if block.shape[1] == 0:
        return block
    return np.where(np.isnan(block), np.nanmedian(block, axis=0, keepdims=True), block)


# Why a corpus seed cannot seed a search space (counted per reason in the CLI output and the tune report).
NOT_A_VALUE = "a knob value is not one of the search space's values"
UNKNOWN_KNOBS = "it has knobs the search space does not have"
BREAKS_CONSTRAINT = "it breaks a constraint of the search space"
REFUSED = "the backend refuses it"
NOT_A_CANDIDATE = "it is not among the candidates tuned"


def _same_value(choice: Any, value: Any, zero_one: bool) -> bool:
    """Whether a seed's ``value`` is the knob's ``choice``: numbers by value (2 == 2.0), a bool equal to 0/1
    only on a 0/1 knob (``zero_one``), anything else by equality (the string "2" is not 2)."""
    if isinstance(choice, bool) or isinstance(value, bool):
        if isinstance(choice, bool) and isinstance(value, bool):
            return choice is value
        return zero_one and choice == value
    if isinstance(choice, (int, float)) and isinstance(value, (int, float)):
        return choice == value
    return type(choice) is type(value) and choice == value


def seed_in_space(space: SearchSpace, config: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None, bool]:
    """A seed's knob config mapped onto ``space`` by value: (config in the space's own values, None, whether a
    knob the seed lacks took its default), or (None, why not, False).

    Each value becomes the knob's choice equal to it (1 == 1.0 == true on a 0/1 knob); a knob the seed lacks
    (the space gained it) takes the knob's default; then the space's constraints are checked.
    """
    unknown = sorted(set(config) - set(space.knob_names))
    if unknown:
        return None, UNKNOWN_KNOBS, False
    mapped: dict[str, Any] = {}
    defaulted = False
    for knob in space.knobs:
        if knob.name not in config:
            mapped[knob.name] = knob.default_value
            defaulted = True
            continue
        zero_one = all(c in (0, 1) for c in knob.choices if isinstance(c, (int, float)))
        match = [c for c in knob.choices if _same_value(c, config[knob.name], zero_one)]
        if not match:
            return None, NOT_A_VALUE, False
        mapped[knob.name] = match[0]
    if not space.is_valid(mapped):
        return None, BREAKS_CONSTRAINT, False
    return mapped, None, defaulted


@attrs.define
class TuneTarget:
    """Everything about one (workload, device, backend) the loop computes once."""

    workload: Workload
    device: Device
    backend: Backend
    space: SearchSpace
    candidates: list[dict[str, Any]]
    keys: list[str]
    index: dict[str, int]
    features: np.ndarray
    prior_scores: np.ndarray
    prior_uncertainty: np.ndarray | None
    prior_description: str
    seeds: list[str]  # candidate keys, best first
    seed_sources: list[str]
    transfer_devices: list[str]
    floor_us: float | None
    skipped_seeds: int = 0
    # What the other devices measured of the same configs (amk.prior.transfer): one column per source, log
    # latency relative to the source's best (NaN: unknown); each candidate's place in the zero-shot order
    # (NaN: no source knows it) and what that order is.
    base_scores: np.ndarray | None = None
    base_names: list[str] = attrs.field(factory=list)
    zero_shot: np.ndarray | None = None
    zero_shot_description: str = ""
    skipped_reasons: dict[str, int] = attrs.field(factory=dict)  # why each left-out seed was left out
    defaulted_seeds: int = 0  # seeds used with the default of knobs they lack
    unseeded: str = ""  # with no seed at all: why (what ``amk tune`` prints as its warm start)

    @property
    def skipped_text(self) -> str:
        """The left-out seeds per reason, e.g. ``2 (a knob value is not one of ...), 1 (...)``."""
        return ", ".join(f"{n} ({why})" for why, n in sorted(self.skipped_reasons.items(), key=lambda kv: -kv[1]))

    @property
    def target_id(self) -> str:
        return target_id(self.workload, self.device, self.backend.name)

    @classmethod
    def prepare(cls, workload: Workload, device: Device, backend: Backend, corpus: CorpusColumns,
                settings: TuneSettings, *, featurizer: Any = "amk", ranker: Any = "knn",
                prior: Any = None, kinds: Sequence[MeasurementKind] | None = None) -> TuneTarget:
        """Search space, seeds, prior scores and features of a target; the prior and the warm start learn
        from the corpus rows of ``kinds`` (measured only by default)."""
        kinds = tuple(kinds) if kinds else DEFAULT_KINDS

        space = backend.search_space(workload, device)
        candidates = []
        for config in space:
            candidates.append(config)
            if settings.max_candidates and len(candidates) >= settings.max_candidates:
                log.warning("the search space has more than %d configs; tuning over the first %d",
                            settings.max_candidates, settings.max_candidates)
                break
        if not candidates:
            raise AmkError(f"the {backend.name} backend's search space for {workload.name!r} on {device.name!r} "
                           "is empty; check its constraints.")
        keys = [config_key(c) for c in candidates]
        index = {k: i for i, k in enumerate(keys)}
        record_configs = [backend.record_config(workload, c) for c in candidates]

        if prior is None:
            prior = make_ranker(corpus, featurizer=featurizer, ranker=ranker, workload_kind=workload.kind,
                                kinds=kinds)
        scores = prior.score(workload, device, record_configs)
        # Only the prior-order policy explores by the prior's uncertainty (the surrogate has its own).
        uncertainty = (prior.uncertainty(workload, device, record_configs)
                       if settings.policy == "prior" and settings.exploration == "uncertainty" else None)
        prior_column = np.where(np.isfinite(scores), scores, 0.0)

        feats = [_knob_features(space, candidates)]
        sources_of = transfer_sources(corpus, workload, device, record_configs, kinds) if settings.transfer \
            else Sources.empty(len(candidates))
        zero = None
        if len(sources_of):
            by_name = {d.name: d for d in corpus.devices}
            similarity = device_similarity(corpus, device, [by_name[d] for d in dict.fromkeys(sources_of.devices)],
                                           kinds=kinds, exclude=workload)
            zero = zero_shot(sources_of, similarity)
            feats.append(_impute(sources_of.filled()))
        if prior.trained:
            feats.append(prior_column[:, None])

        seeds, sources = [], []
        reasons: dict[str, int] = {}
        defaulted = 0
        for seed in portfolio_warm_start(workload, device, corpus, settings, kinds):
            try:
                mapped, why, took_default = seed_in_space(space, backend.knob_config(workload, seed.config))
            except InvalidConfigError:
                mapped, why, took_default = None, REFUSED, False
            key = config_key(space.canonical(mapped)) if mapped is not None else None
            if mapped is not None and key not in index:
                why = NOT_A_CANDIDATE
            if why is not None:
                reasons[why] = reasons.get(why, 0) + 1
                continue
            if key not in seeds:
                seeds.append(key)
                defaulted += took_default
                beyond = (f", shape distance {seed.distance:.2f} BEYOND the radius {settings.shape_radius:g}"
                          if seed.distance > settings.shape_radius else "")
                sources.append(f"{seed.source} ({seed.device}, {seed.latency_us:.3f} us{beyond})")
            if len(seeds) >= settings.warm_start:
                break
        if not seeds and zero is not None:
            for rank, i in enumerate(zero.order()[:settings.warm_start], 1):
                seeds.append(keys[i])
                sources.append(f"#{rank} of the zero-shot order ({zero.description})")
        unseeded = ""
        if not seeds:
            if reasons:
                why = (f"no warm start: the corpus had {sum(reasons.values())} seed(s) for it, none usable in this "
                       "search space")
            else:
                why = f"cold start: {cold_start_reason(workload, device, corpus, kinds)}"
            default = config_key(space.canonical(space.default_config))
            if space.default_known and default in index:
                seeds, sources = [default], [f"the search space's default config ({why})"]
            else:  # each knob's first choice is no one's choice: the policy's random cold start picks first
                unseeded = f"none ({why}; the space names no default config, so the first picks are random)"
        floor = backend.floor_us(workload, device)
        return cls(workload, device, backend, space, candidates, keys, index, np.column_stack(feats), scores,
                   uncertainty, repr(prior), seeds, sources, sorted(set(sources_of.devices)), floor,
                   skipped_seeds=sum(reasons.values()), base_scores=sources_of.filled(),
                   base_names=list(sources_of.names), zero_shot=None if zero is None else zero.positions(),
                   zero_shot_description="" if zero is None else zero.description, skipped_reasons=reasons,
                   defaulted_seeds=defaulted, unseeded=unseeded)


def target_id(workload: Workload, device: Device, backend_name: str) -> str:
    """What identifies a tune target: a state file is only resumed for the same one."""
    return json.dumps([workload.key, device.name, backend_name], separators=(",", ":"))


def run_stem(workload: Workload, device: Device, backend_name: str) -> str:
    """A file-name stem for a target's state and report files."""
    digest = hashlib.sha256(target_id(workload, device, backend_name).encode()).hexdigest()[:10]
    slug = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in workload.name)[:40]
    return f"{slug}-{device.name}-{backend_name}-{digest}"


def default_state_path(settings: TuneSettings, workload: Workload, device: Device, backend_name: str) -> Path:
    return Path(settings.state_dir) / f"{run_stem(workload, device, backend_name)}.state.json"
