"""The ``amk`` featurizer: the reference module's decode features, and the generic encoding for the rest.

A decode point gets the log-scaled ModelShape features and the schedule + kernel-knob features (knob
defaults where a record lacks them, so the length is the same across schema versions); any other
workload (an imported Kernel Tuner kernel, say) gets the ``generic`` featurizer's knob and shape
columns. Every point gets the device's specs, which is what lets a prior transfer between devices.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs
import numpy as np

from amk.core.devices import Device
from amk.core.errors import AmkError
from amk.core.featurizer import Featurizer
from amk.core.implementation import check_is_fitted
from amk.core.workload import Workload
from amk.decode.schedule import PAGE_POLICIES, SEARCHABLE_KNOB_DEFAULTS, SM_POLICIES
from amk.decode.shapes import ModelShape
from amk.decode.workload import DECODE_KIND, model_shape
from amk.featurizers.generic import GenericFeaturizer, gather

SHAPE_FEATURES: tuple[str, ...] = (
    "decode.log_hidden", "decode.log_n_layers", "decode.log_n_heads", "decode.gqa", "decode.log_head_dim",
    "decode.ffn_ratio", "decode.log_vocab",
)
SCHEDULE_FEATURES: tuple[str, ...] = (
    "decode.log2_n_tile", "decode.log2_kv_block", "decode.pipelining_depth", "decode.log2_threads_per_block",
    "decode.log2_smem_kib", "decode.sm_policy", "decode.page_policy", "decode.n_fusion_groups",
    "decode.cols_per_warp", "decode.cpasync", "decode.cpa_stages", "decode.cpa_cols",
)


def _number(value: Any, default: float) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return default


def _numbers(values: list[Any], default: float) -> list[float] | np.ndarray:
    """Each value as a float, ``default`` where it is not a finite number (fast when all are numbers)."""
    try:
        out = np.fromiter(values, dtype=np.float64, count=len(values))
    except (TypeError, ValueError):
        return [_number(v, default) for v in values]
    return np.where(np.isfinite(out), out, default)


_EMPTY: Mapping[str, Any] = {}


def _mapping(value: Any) -> Mapping[str, Any]:
    # ``type(...) is dict`` first: an ABC isinstance check costs ~10x more, and this runs per config and key.
    return value if type(value) is dict or isinstance(value, Mapping) else _EMPTY


def schedule_feature_matrix(configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """(n, len(SCHEDULE_FEATURES)): the fixed-length vector of each decode schedule dict, column by column.

    Odd or missing keys take neutral defaults (knob defaults for absent kernel knobs), so records of
    every schema version give vectors of the same length.
    """
    n = len(configs)
    tilings = [_mapping(c.get("tiling")) for c in configs]
    gemvs = [_mapping(t.get("gemv")) for t in tilings]
    knobs = [_mapping(c.get("kernel_knobs")) for c in configs]
    sm_index = {name: float(i) for i, name in enumerate(SM_POLICIES)}
    page_index = {name: float(i) for i, name in enumerate(PAGE_POLICIES)}
    columns = [
        _numbers([g.get("N_tile", g.get("base_width")) for g in gemvs], 0.0),
        _numbers([_mapping(t.get("attention")).get("kv_block") for t in tilings], 0.0),
        _numbers([c.get("pipelining_depth") for c in configs], 0.0),
        _numbers([c.get("threads_per_block") for c in configs], 0.0),
        np.asarray(_numbers([c.get("smem_bytes_per_block") for c in configs], 0.0)) / 1024.0,
        [2.0 if type(sm := c.get("sm_assignment", "load_balance")) is dict or isinstance(sm, Mapping)
         else sm_index.get(sm, 1.0) if isinstance(sm, str) else 1.0 for c in configs],
        [page_index.get(p, 2.0) if isinstance(p := c.get("page_allocation", "graph_color"), str) else 2.0
         for c in configs],
        [float(len(f)) if isinstance(f := c.get("fusion_grouping"), (list, tuple)) else 0.0 for c in configs],
        *(_numbers([k.get(name) for k in knobs], float(default)) for name, default in SEARCHABLE_KNOB_DEFAULTS.items()),
    ]
    out = np.empty((n, len(SCHEDULE_FEATURES)))
    for j, column in enumerate(columns):
        out[:, j] = column
    for col in (0, 1, 3, 4):  # tile sizes, threads and shared memory span orders of magnitude
        out[:, col] = np.log2(1.0 + np.maximum(out[:, col], 0.0))
    return out


def schedule_features(config: Mapping[str, Any]) -> list[float]:
    """The feature vector of one decode schedule dict (see :func:`schedule_feature_matrix`)."""
    return schedule_feature_matrix([config])[0].tolist()


def decode_shape_features(workload: Workload) -> list[float]:
    try:
        shape = model_shape(workload)
    except AmkError:
        shape = ModelShape()
    return shape.feature_vec()


class AmkFeaturizer(Featurizer):
    """Decode shape + schedule features for decode workloads, the generic encoding for all others."""

    name: ClassVar[str] = "amk"

    @attrs.frozen
    class Options:
        max_one_hot: int = attrs.field(default=16, validator=attrs.validators.ge(0))  # passed to the generic encoding of non-decode workloads

    def fit(self, workloads: Sequence[Workload], devices: Sequence[Device],
            configs: Sequence[Mapping[str, Any]]) -> AmkFeaturizer:
        """``workloads[i]`` and ``configs[i]`` are one point's; ``devices`` may be just the devices seen."""
        if len(workloads) != len(configs):
            raise ValueError(f"fit needs one workload per config, got {len(workloads)} and {len(configs)}")
        # Knob names and categories come from the non-decode points only; decode configs have their own columns.
        is_decode = [w.kind == DECODE_KIND for w in workloads]
        self.generic_ = GenericFeaturizer(GenericFeaturizer.Options(max_one_hot=self.options.max_one_hot))
        self.generic_.fit([w for w, d in zip(workloads, is_decode) if not d], devices,
                          [c for c, d in zip(configs, is_decode) if not d])
        return self

    def _check_fitted(self) -> None:
        check_is_fitted(self, "generic_")

    @property
    def feature_names(self) -> list[str]:
        self._check_fitted()
        g = self.generic_
        return ["is_decode", *SHAPE_FEATURES, *SCHEDULE_FEATURES, *g.config_names, *g.shape_names, *g.device_names]

    def transform(self, workloads: Sequence[Workload], devices: Sequence[Device],
                  configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        identity = np.arange(len(configs))
        return self.transform_indexed(workloads, devices, configs, identity, identity, identity)

    def transform_indexed(self, workloads: Sequence[Workload], devices: Sequence[Device],
                          configs: Sequence[Mapping[str, Any]], workload_index: np.ndarray,
                          device_index: np.ndarray, config_index: np.ndarray) -> np.ndarray:
        self._check_fitted()
        g = self.generic_
        workload_index = np.asarray(workload_index)
        config_index = np.asarray(config_index)
        decode_w = np.asarray([w.kind == DECODE_KIND for w in workloads], dtype=bool)
        w_block = np.zeros((len(workloads), 1 + len(SHAPE_FEATURES) + len(g.shape_names)))
        for i, w in enumerate(workloads):
            if decode_w[i]:
                w_block[i, 0] = 1.0
                w_block[i, 1:1 + len(SHAPE_FEATURES)] = decode_shape_features(w)
        others = np.nonzero(~decode_w)[0]
        if len(others) and g.shape_names:
            w_block[others, 1 + len(SHAPE_FEATURES):] = g.encode_workloads([workloads[i] for i in others])
        # A config is encoded the decode way or the generic way according to the workload it runs with.
        row_decode = decode_w[workload_index] if len(workloads) else np.zeros(0, dtype=bool)
        used_decode = np.zeros(len(configs), dtype=bool)
        used_decode[config_index[row_decode]] = True
        used_other = np.zeros(len(configs), dtype=bool)
        used_other[config_index[~row_decode]] = True
        decode_block = np.zeros((len(configs), len(SCHEDULE_FEATURES)))
        decode_ids = np.nonzero(used_decode)[0]
        if len(decode_ids):
            decode_block[decode_ids] = schedule_feature_matrix([configs[i] for i in decode_ids])
        other_block = np.zeros((len(configs), len(g.config_names)))
        other_ids = np.nonzero(used_other)[0]
        if len(other_ids) and g.config_names:
            other_block[other_ids] = g.encode_configs([configs[i] for i in other_ids])
        x = gather((w_block[:, :1 + len(SHAPE_FEATURES)], decode_block, other_block,
                    w_block[:, 1 + len(SHAPE_FEATURES):], g.encode_devices(devices)),
                   (workload_index, config_index, config_index, workload_index, np.asarray(device_index)))
        # A config used both ways (only possible for odd data) must not leak one way's columns into the other.
        if used_decode.any() and used_other.any():
            n_dec = 1 + len(SHAPE_FEATURES)
            x[~row_decode, n_dec:n_dec + len(SCHEDULE_FEATURES)] = 0.0
            start = n_dec + len(SCHEDULE_FEATURES)
            x[row_decode, start:start + len(g.config_names)] = 0.0
        return x

    def get_state(self) -> dict[str, Any]:
        self._check_fitted()
        return {"generic": self.generic_.get_state()}

    def set_state(self, state: Mapping[str, Any]) -> AmkFeaturizer:
        self.generic_ = GenericFeaturizer(GenericFeaturizer.Options(max_one_hot=self.options.max_one_hot))
        self.generic_.set_state(state["generic"])
        return self
