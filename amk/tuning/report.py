"""The final report of a tune run: a JSON summary and a PNG of the best-so-far latency per evaluation.

The PNG needs matplotlib (``pip install 'amk[plot]'``); without it the JSON says so and no PNG is written.
"""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path
from typing import Any

from amk.tuning.loop import TuneResult
from amk.tuning.settings import TuneSettings


def report_dict(result: TuneResult, settings: TuneSettings, store: str | None) -> dict[str, Any]:
    target, state = result.target, result.state
    best = result.best
    best_config = result.best_config()
    floor = target.floor_us
    return {
        "run_id": state.run_id,
        "workload": {"kind": target.workload.kind, "name": target.workload.name, "shape": target.workload.shape},
        "device": target.device.name,
        "backend": target.backend.name,
        "measurement_kind": target.backend.measurement_kind.value,
        "policy": settings.policy,
        "isolation": result.isolation,
        "exploration": settings.exploration,
        "seed": state.seed,
        "sessions": state.sessions,
        "search_space_size": len(target.candidates),
        "evaluations": len(state.trials),
        "measurements": state.measurements,
        "elapsed_s": state.elapsed_s,
        "stop_reason": state.stop_reason,
        "best": None if best is None else {
            "evaluation": best.evaluation,
            "latency_us": state.incumbent_us,
            "config": best_config,
            "record_config": target.backend.record_config(target.workload, best_config),
        },
        "floor_us": floor,
        "fraction_of_floor": (floor / state.incumbent_us) if floor and state.incumbent_us else None,
        "warm_start": list(state.warm_sources),
        "warm_start_left_out": target.skipped_seeds,  # corpus seeds this search space cannot take
        "warm_start_left_out_reasons": dict(target.skipped_reasons),  # reason -> how many
        "warm_start_defaulted_knobs": target.defaulted_seeds,  # seeds that took the default of a knob they lack
        "resumed_from_store": result.adopted,
        "prior": target.prior_description,
        "transfer_devices": list(target.transfer_devices),
        "verdicts": dict(sorted(collections.Counter(t.verdict for t in state.trials).items())),
        "best_so_far": [[e, b] for e, b in result.best_so_far()],
        "store": store,
    }


def write_plot(result: TuneResult, path: Path) -> str | None:
    """Write the best-so-far PNG; returns why not when it cannot (matplotlib missing), else None."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed, so no PNG was written; install it with: pip install 'amk[plot]'"
    points = [(e, b) for e, b in result.best_so_far() if b is not None]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if points:
        ax.step([p[0] for p in points], [p[1] for p in points], where="post", label="best so far")
    if result.target.floor_us:
        ax.axhline(result.target.floor_us, color="grey", linestyle="--", label="physical floor")
    ax.set_xlabel("evaluations")
    ax.set_ylabel(f"latency (us, {result.target.backend.measurement_kind.value})")
    ax.set_title(f"{result.target.workload.name} on {result.target.device.name} ({result.target.backend.name})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return None


def write_report(result: TuneResult, settings: TuneSettings, directory: Path, stem: str,
                 store: str | None) -> dict[str, Any]:
    """Write ``STEM.report.json`` and ``STEM.best.png`` into ``directory``; returns the report."""
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    report = report_dict(result, settings, store)
    png = directory / f"{stem}.best.png"
    note = write_plot(result, png)
    report["plot"] = None if note else str(png)
    report["plot_note"] = note
    path = directory / f"{stem}.report.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1, allow_nan=False, default=str))
    os.replace(tmp, path)
    report["report"] = str(path)
    return report
