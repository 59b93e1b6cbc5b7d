"""BASELINE, not amk: the original system's corpus loading and warm start, re-implemented from the seed.

What the original did on every call (``../shared/seed/prior.txt``): read the whole JSONL corpus into a
list of dicts (``read_corpus``), turn every PASS row of the GPU into a point with its model shape
(``load_points``), score every point by its shape distance to the target, keep those within the radius
(else all), sort by (distance, pct_of_roofline) and take the first k distinct schedules (``warm_start``).

The only change is where fields are read: the synthetic corpus is in amk's schema (device.name,
workload.shape, measurement.*) rather than the original's flat rows; pct_of_roofline is computed the way
the original stored it (100 * latency / bound). The algorithm and its costs are the original's.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from amk.decode.shapes import SHAPE_FIELDS, ModelShape


def read_corpus(path: str) -> list[dict[str, Any]]:
    """The original read the whole file on every call."""
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


@dataclass
class CorpusPoint:
    shape: ModelShape
    gpu: str
    schedule: dict[str, Any]
    pct_of_roofline: float
    latency_us: float


def load_points(path: str, gpu: str) -> list[CorpusPoint]:
    points = []
    for rec in read_corpus(path):
        try:
            m = rec.get("measurement", {})
            if m.get("verdict", "PASS") != "PASS":
                continue
            if rec.get("device", {}).get("name") != gpu:
                continue
            if rec.get("workload", {}).get("kind") != "decode":
                continue
            sch = rec.get("config")
            if not isinstance(sch, dict):
                continue
            lat, bound = m.get("latency_us"), m.get("bound_us")
            if lat is None:
                continue
            pct = 100.0 * lat / bound if bound else float("inf")
            shape = rec["workload"]["shape"]
            points.append(CorpusPoint(ModelShape(**{k: int(shape.get(k, 0) or 0) for k in SHAPE_FIELDS}),
                                      gpu, sch, float(pct), float(lat)))
        except (TypeError, ValueError, KeyError):
            continue
    return points


def warm_start(path: str, target: ModelShape, gpu: str, k: int = 3, shape_radius: float = 1.0) -> list[dict]:
    points = load_points(path, gpu)
    if not points:
        return []
    scored = [(target.distance(p.shape), p.pct_of_roofline, p.schedule) for p in points]
    near = [s for s in scored if s[0] <= shape_radius]
    pool = near if near else scored
    pool.sort(key=lambda s: (round(s[0], 3), s[1]))
    seeds, seen = [], set()
    for _dist, _pct, sch in pool:
        key = repr(sorted((k2, repr(v2)) for k2, v2 in sch.items()))
        if key in seen:
            continue
        seen.add(key)
        seeds.append(sch)
        if len(seeds) >= k:
            break
    return seeds


def training_points(path: str, gpu: str) -> list[list[float]]:
    """The original's training input for one GPU: every usable point (loading is the cost measured)."""
    return [p.shape.feature_vec() + [p.pct_of_roofline] for p in load_points(path, gpu)
            if math.isfinite(p.pct_of_roofline)]
