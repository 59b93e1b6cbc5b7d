"""The decode backends' knob dicts <-> amk's ScheduleConfig layout.

The roofline and cuda backends search flat knobs (the seed's kernel knobs, ``gemv_n_tile``,
``threads_per_block`` and, for roofline, ``pipelining_depth``) but record configs in the ScheduleConfig
layout, so their records read like every other decode schedule and the ``amk`` featurizer sees them alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from amk.core.errors import InvalidConfigError, ValidationError
from amk.decode.schedule import SEARCHABLE_KNOB_CHOICES, KernelKnobs, ScheduleConfig


def schedule_of_knobs(knobs: Mapping[str, Any]) -> dict[str, Any]:
    """Flat knobs in ScheduleConfig layout; schedule fields the knobs do not set keep their defaults."""
    optional = {"pipelining_depth": knobs["pipelining_depth"]} if "pipelining_depth" in knobs else {}
    return ScheduleConfig(
        gemv_n_tile=knobs["gemv_n_tile"], threads_per_block=knobs["threads_per_block"],
        kernel_knobs=KernelKnobs.from_dict({k: knobs[k] for k in SEARCHABLE_KNOB_CHOICES}), **optional,
    ).to_dict()


def knobs_of_schedule(config: Mapping[str, Any], knob_names: Sequence[str], default_n_tile: int) -> dict[str, Any]:
    """The flat knobs of a config given as knobs or in ScheduleConfig layout (e.g. a warm-start seed)."""
    if set(config) == set(knob_names):
        return dict(config)
    try:
        schedule = ScheduleConfig.from_dict(config, ignore_unknown=True)
    except ValidationError as exc:
        raise InvalidConfigError(f"config {dict(config)!r} is not a decode schedule: {exc}") from None
    knobs = {
        **schedule.kernel_knobs.to_dict(),
        "threads_per_block": schedule.threads_per_block,
        "gemv_n_tile": schedule.gemv_n_tile if schedule.gemv_n_tile is not None else default_n_tile,
    }
    if "pipelining_depth" in knob_names:
        knobs["pipelining_depth"] = schedule.pipelining_depth
    return knobs
