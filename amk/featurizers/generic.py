"""The ``generic`` featurizer: any knob mapping, any workload shape, the device's specs.

Numeric knobs become their value (or its log2 when they span a wide positive range), categorical knobs
one column per category (an ordinal code when there are many), nested mappings are flattened to dotted
names. What ``fit`` learns (knob names, kinds, categories, fill values) is plain data, so a trained
featurizer saves as JSON. Workloads, devices and configs are each encoded once per unique item.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs
import numpy as np

from amk.core.devices import Device
from amk.core.featurizer import Featurizer
from amk.core.implementation import check_is_fitted
from amk.core.workload import Workload
from amk.prior.features import DEVICE_FEATURES, device_spec_rows, flatten, is_number

LOG_SPAN = 8.0  # a positive numeric knob whose max/min reaches this is encoded as log2


@attrs.define
class ValueEncoder:
    """How one flattened knob (or shape entry) becomes columns; learned by ``fit``."""

    name: str
    kind: str  # "num" or "cat"
    log: bool = False
    fill: float = 0.0  # encoded value of a missing numeric entry
    categories: list[str] = attrs.field(factory=list)
    one_hot: bool = True

    @classmethod
    def fit(cls, name: str, values: list[Any], max_one_hot: int) -> ValueEncoder:
        present = [v for v in values if v is not None]
        if present and all(is_number(v) or isinstance(v, bool) for v in present):
            nums = np.asarray([float(v) for v in present])
            log = bool(nums.min() > 0 and nums.max() / nums.min() >= LOG_SPAN)
            encoded = np.log2(nums) if log else nums
            return cls(name, "num", log=log, fill=float(np.median(encoded)))
        categories = sorted({str(v) for v in present})
        return cls(name, "cat", categories=categories, one_hot=len(categories) <= max_one_hot)

    @property
    def column_names(self) -> list[str]:
        if self.kind == "num":
            return [f"log2({self.name})" if self.log else self.name]
        if self.one_hot:
            return [f"{self.name}={c}" for c in self.categories]
        return [f"{self.name}#code"]

    def encode(self, values: list[Any]) -> np.ndarray:
        n = len(values)
        if self.kind == "num":
            out = np.full(n, self.fill)
            for i, v in enumerate(values):
                if is_number(v) or isinstance(v, bool):
                    fv = float(v)
                    if not self.log:
                        out[i] = fv
                    elif fv > 0:
                        out[i] = math.log2(fv)
            return out[:, None]
        index = {c: i for i, c in enumerate(self.categories)}
        codes = np.asarray([index.get(str(v), -1) if v is not None else -1 for v in values])
        if not self.one_hot:
            return codes[:, None].astype(np.float64)
        out = np.zeros((n, len(self.categories)))
        hit = codes >= 0
        out[np.nonzero(hit)[0], codes[hit]] = 1.0
        return out


class MappingEncoder:
    """Encodes a list of mappings (configs, or workload shapes) column by column."""

    def __init__(self, encoders: list[ValueEncoder]) -> None:
        self.encoders = encoders

    @classmethod
    def fit(cls, mappings: Sequence[Mapping[str, Any]], max_one_hot: int) -> MappingEncoder:
        flats = [flatten(m) for m in mappings]
        names = sorted({k for f in flats for k in f})
        return cls([ValueEncoder.fit(n, [f.get(n) for f in flats], max_one_hot) for n in names])

    @property
    def column_names(self) -> list[str]:
        return [c for e in self.encoders for c in e.column_names]

    def encode(self, mappings: Sequence[Mapping[str, Any]]) -> np.ndarray:
        flats = [flatten(m) for m in mappings]
        blocks = [e.encode([f.get(e.name) for f in flats]) for e in self.encoders]
        if not blocks:
            return np.zeros((len(mappings), 0))
        return np.hstack(blocks)

    def get_state(self) -> list[dict[str, Any]]:
        return [attrs.asdict(e) for e in self.encoders]

    @classmethod
    def from_state(cls, state: list[Mapping[str, Any]]) -> MappingEncoder:
        return cls([ValueEncoder(**dict(e)) for e in state])


def shape_mapping(workload: Workload) -> dict[str, Any]:
    """A workload's shape plus its overall log size (what lets different problem sizes compare)."""
    flat = flatten(workload.shape)
    log_size = sum(math.log2(1.0 + abs(v)) for v in flat.values() if is_number(v))
    return {**workload.shape, "log2_size": log_size}


class GenericFeaturizer(Featurizer):
    """Any knob mapping: numeric knobs as values or logs, categorical ones one-hot, plus shape and device."""

    name: ClassVar[str] = "generic"

    @attrs.frozen
    class Options:
        max_one_hot: int = attrs.field(default=16, validator=attrs.validators.ge(0))  # categorical knobs with more categories get an ordinal code instead
        use_shape: bool = True
        use_device: bool = True

    def fit(self, workloads: Sequence[Workload], devices: Sequence[Device],
            configs: Sequence[Mapping[str, Any]]) -> GenericFeaturizer:
        self.config_encoder_ = MappingEncoder.fit(configs, self.options.max_one_hot)
        self.shape_encoder_ = MappingEncoder.fit([shape_mapping(w) for w in _unique(workloads)],
                                                 self.options.max_one_hot)
        specs = device_spec_rows(_unique(devices))
        with warnings.catch_warnings():  # a spec no device has (a CPU has no SM count) is all-NaN: filled below
            warnings.simplefilter("ignore", RuntimeWarning)
            means = np.nanmean(specs, axis=0) if len(specs) else np.zeros(len(DEVICE_FEATURES))
        self.device_fill_ = [float(x) if np.isfinite(x) else 0.0 for x in np.atleast_1d(means)]
        return self

    def _check_fitted(self) -> None:
        check_is_fitted(self, "config_encoder_")

    @property
    def feature_names(self) -> list[str]:
        self._check_fitted()
        return self.config_names + self.shape_names + self.device_names

    @property
    def config_names(self) -> list[str]:
        return [f"knob.{c}" for c in self.config_encoder_.column_names]

    @property
    def shape_names(self) -> list[str]:
        return [f"shape.{c}" for c in self.shape_encoder_.column_names] if self.options.use_shape else []

    @property
    def device_names(self) -> list[str]:
        return list(DEVICE_FEATURES) if self.options.use_device else []

    def encode_configs(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        self._check_fitted()
        return self.config_encoder_.encode(configs)

    def encode_workloads(self, workloads: Sequence[Workload]) -> np.ndarray:
        self._check_fitted()
        if not self.options.use_shape:
            return np.zeros((len(workloads), 0))
        return self.shape_encoder_.encode([shape_mapping(w) for w in workloads])

    def encode_devices(self, devices: Sequence[Device]) -> np.ndarray:
        self._check_fitted()
        if not self.options.use_device:
            return np.zeros((len(devices), 0))
        specs = device_spec_rows(devices)
        fill = np.asarray(self.device_fill_)
        return np.where(np.isnan(specs), fill, specs)

    def transform(self, workloads: Sequence[Workload], devices: Sequence[Device],
                  configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        n = len(configs)
        identity = np.arange(n)
        return self.transform_indexed(workloads, devices, configs, identity, identity, identity)

    def transform_indexed(self, workloads: Sequence[Workload], devices: Sequence[Device],
                          configs: Sequence[Mapping[str, Any]], workload_index: np.ndarray,
                          device_index: np.ndarray, config_index: np.ndarray) -> np.ndarray:
        blocks = (self.encode_configs(configs), self.encode_workloads(workloads), self.encode_devices(devices))
        return gather(blocks, (config_index, workload_index, device_index))

    def get_state(self) -> dict[str, Any]:
        self._check_fitted()
        return {"configs": self.config_encoder_.get_state(), "shapes": self.shape_encoder_.get_state(),
                "device_fill": list(self.device_fill_)}

    def set_state(self, state: Mapping[str, Any]) -> GenericFeaturizer:
        self.config_encoder_ = MappingEncoder.from_state(state["configs"])
        self.shape_encoder_ = MappingEncoder.from_state(state["shapes"])
        self.device_fill_ = [float(x) for x in state["device_fill"]]
        return self


def gather(blocks: Sequence[np.ndarray], indexes: Sequence[np.ndarray]) -> np.ndarray:
    """One float32 row per point: each unique-item block indexed by its column, side by side."""
    n = len(indexes[0])
    widths = [b.shape[1] for b in blocks]
    out = np.empty((n, sum(widths)), dtype=np.float32)
    start = 0
    for block, index, width in zip(blocks, indexes, widths):
        if width:
            out[:, start:start + width] = block.astype(np.float32)[np.asarray(index)]
        start += width
    return out


def _unique(items: Sequence[Any]) -> list[Any]:
    seen: dict[Any, Any] = {}
    for item in items:
        key = item.key if isinstance(item, Workload) else item
        seen.setdefault(key, item)
    return list(seen.values())
