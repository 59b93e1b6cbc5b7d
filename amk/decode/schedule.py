"""amk's own decode-kernel config: a ``ScheduleConfig`` plus the ``KernelKnobs`` the tuner searches.

The dict layout (``to_dict``/``from_dict``) is the reference module's: ``tiling.gemv.N_tile``,
``tiling.attention.kv_block`` and a ``kernel_knobs`` sub-dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from amk.core.errors import ValidationError

SEARCHABLE_KNOB_CHOICES: dict[str, tuple[int, ...]] = {
    "cols_per_warp": (1, 2, 4),  # output columns one warp computes (x reuse)
    "cpasync": (0, 1),  # 1: cp.async double-buffered GEMV; 0: register path
    "cpa_stages": (2, 3, 4),  # cp.async ring depth (deeper hides more HBM latency)
    "cpa_cols": (2, 4),  # columns one warp streams at once under cp.async
}
SEARCHABLE_KNOB_DEFAULTS: dict[str, int] = {"cols_per_warp": 1, "cpasync": 1, "cpa_stages": 4, "cpa_cols": 2}

SM_POLICIES: tuple[str, ...] = ("round_robin", "load_balance", "explicit")
PAGE_POLICIES: tuple[str, ...] = ("none", "linear", "graph_color")

MAX_THREADS_PER_BLOCK = 1024
MAX_SMEM_BYTES_PER_BLOCK = 232_448  # Hopper's opt-in maximum (227 KiB)
MAX_PIPELINING_DEPTH = 8


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _choice_validator(instance: Any, attribute: attrs.Attribute, value: int) -> None:
    choices = SEARCHABLE_KNOB_CHOICES[attribute.name]
    if not _is_int(value) or value not in choices:
        raise ValidationError(f"kernel knob {attribute.name}={value!r} is not one of {list(choices)}.")


@attrs.frozen
class KernelKnobs:
    """The compile-time build knobs of the decode GEMV; defaults are the reference defaults."""

    cols_per_warp: int = attrs.field(default=1, validator=_choice_validator)
    cpasync: int = attrs.field(default=1, validator=_choice_validator)
    cpa_stages: int = attrs.field(default=4, validator=_choice_validator)
    cpa_cols: int = attrs.field(default=2, validator=_choice_validator)

    @classmethod
    def from_dict(cls, knobs: Mapping[str, Any] | None) -> KernelKnobs:
        """Missing knobs take their defaults; unknown knobs are refused."""
        knobs = dict(knobs or {})
        unknown = sorted(set(knobs) - set(SEARCHABLE_KNOB_CHOICES))
        if unknown:
            raise ValidationError(
                f"unknown kernel knob(s) {unknown}; known knobs are {list(SEARCHABLE_KNOB_CHOICES)}."
            )
        return cls(**knobs)

    def to_dict(self) -> dict[str, int]:
        return attrs.asdict(self)


def _optional_power_of_two(lo: int, hi: int):
    def check(instance: Any, attribute: attrs.Attribute, value: int | None) -> None:
        if value is None:
            return
        if not _is_int(value) or not lo <= value <= hi or value & (value - 1):
            raise ValidationError(
                f"ScheduleConfig.{attribute.name}={value!r} must be a power of two in [{lo}, {hi}] (or absent)."
            )

    return check


def _int_range(lo: int, hi: int, multiple_of: int = 1):
    def check(instance: Any, attribute: attrs.Attribute, value: int) -> None:
        if not _is_int(value) or not lo <= value <= hi or value % multiple_of:
            extra = f" and a multiple of {multiple_of}" if multiple_of > 1 else ""
            raise ValidationError(f"ScheduleConfig.{attribute.name}={value!r} must be in [{lo}, {hi}]{extra}.")

    return check


def _check_sm_assignment(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, str):
        if value not in SM_POLICIES:
            raise ValidationError(f"ScheduleConfig.sm_assignment={value!r} must be one of {list(SM_POLICIES)}.")
        return
    if isinstance(value, Mapping) and all(_is_int(k) and _is_int(v) and k >= 0 and v >= 0 for k, v in value.items()):
        return
    raise ValidationError(
        f"ScheduleConfig.sm_assignment={value!r} must be a policy name or an explicit {{task: sm}} "
        "mapping of non-negative integers."
    )


def _check_page_allocation(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if value not in PAGE_POLICIES:
        raise ValidationError(f"ScheduleConfig.page_allocation={value!r} must be one of {list(PAGE_POLICIES)}.")


def _to_fusion_groups(value: Any) -> tuple[tuple[str, ...], ...]:
    try:
        groups = tuple(tuple(group) for group in value)
    except TypeError:
        raise ValidationError(
            f"ScheduleConfig.fusion_grouping={value!r} must be a list of lists of op names."
        ) from None
    if not all(isinstance(op, str) and op for group in groups for op in group):
        raise ValidationError(f"ScheduleConfig.fusion_grouping={value!r} must hold only non-empty op names.")
    return groups


def _to_sm_assignment(value: Any) -> Any:
    # JSON turns explicit {task: sm} keys into strings; bring them back to ints.
    if isinstance(value, Mapping):
        try:
            return {int(k): int(v) for k, v in value.items()}
        except (TypeError, ValueError):
            raise ValidationError(
                f"ScheduleConfig.sm_assignment={dict(value)!r} must map integer tasks to integer SMs."
            ) from None
    return value


@attrs.frozen
class ScheduleConfig:
    """How the decode megakernel is scheduled: tiling, fusion, SM and page policies, block resources."""

    gemv_n_tile: int | None = attrs.field(default=None, validator=_optional_power_of_two(8, 4096))
    attention_kv_block: int | None = attrs.field(default=None, validator=_optional_power_of_two(16, 4096))
    fusion_grouping: tuple[tuple[str, ...], ...] = attrs.field(default=(), converter=_to_fusion_groups)
    sm_assignment: Any = attrs.field(default="load_balance", converter=_to_sm_assignment,
                                     validator=_check_sm_assignment)
    pipelining_depth: int = attrs.field(default=2, validator=_int_range(0, MAX_PIPELINING_DEPTH))
    page_allocation: str = attrs.field(default="graph_color", validator=_check_page_allocation)
    threads_per_block: int = attrs.field(default=256, validator=_int_range(32, MAX_THREADS_PER_BLOCK, 32))
    smem_bytes_per_block: int = attrs.field(default=0, validator=_int_range(0, MAX_SMEM_BYTES_PER_BLOCK))
    kernel_knobs: KernelKnobs = attrs.field(factory=KernelKnobs)

    KEYS = frozenset({
        "tiling", "fusion_grouping", "sm_assignment", "pipelining_depth", "page_allocation",
        "threads_per_block", "smem_bytes_per_block", "kernel_knobs",
    })

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any], *, ignore_unknown: bool = False) -> ScheduleConfig:
        """Build from the reference dict layout; unknown keys are refused unless ``ignore_unknown``."""
        if not isinstance(cfg, Mapping):
            raise ValidationError(f"a schedule config must be a mapping, got {type(cfg).__name__}.")
        unknown = sorted(set(cfg) - cls.KEYS)
        if unknown and not ignore_unknown:
            raise ValidationError(f"unknown schedule key(s) {unknown}; known keys are {sorted(cls.KEYS)}.")
        tiling = cfg.get("tiling") or {}
        if not isinstance(tiling, Mapping):
            raise ValidationError(f"schedule 'tiling' must be a mapping, got {tiling!r}.")
        gemv = tiling.get("gemv") or {}
        attention = tiling.get("attention") or {}
        kwargs: dict[str, Any] = {
            "gemv_n_tile": gemv.get("N_tile", gemv.get("base_width")),
            "attention_kv_block": attention.get("kv_block"),
            "kernel_knobs": KernelKnobs.from_dict(cfg.get("kernel_knobs")),
        }
        for key in ("fusion_grouping", "sm_assignment", "pipelining_depth", "page_allocation",
                    "threads_per_block", "smem_bytes_per_block"):
            if key in cfg:
                kwargs[key] = cfg[key]
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The reference dict layout, JSON-ready."""
        tiling: dict[str, Any] = {}
        if self.gemv_n_tile is not None:
            tiling["gemv"] = {"N_tile": self.gemv_n_tile}
        if self.attention_kv_block is not None:
            tiling["attention"] = {"kv_block": self.attention_kv_block}
        sm = self.sm_assignment
        return {
            "tiling": tiling,
            "fusion_grouping": [list(group) for group in self.fusion_grouping],
            "sm_assignment": {str(k): v for k, v in sm.items()} if isinstance(sm, Mapping) else sm,
            "pipelining_depth": self.pipelining_depth,
            "page_allocation": self.page_allocation,
            "threads_per_block": self.threads_per_block,
            "smem_bytes_per_block": self.smem_bytes_per_block,
            "kernel_knobs": self.kernel_knobs.to_dict(),
        }
