"""The final report of a tune run: a JSON summary and a PNG of the best-so-far latency per evaluation.

Runs keep their history: each run's report and plot are named by its run id in the target's folder
(``STATE_DIR/TARGET/RUN_ID.report.json``, ``RUN_ID.best.png``), and ``latest.report.json`` /
``latest.best.png`` there point at the most recent run's (``amk runs`` lists them). The PNG needs
matplotlib (``pip install 'amk[plot]'``); without it the JSON says so and no PNG is written.
"""

from __future__ import annotations

import collections
import json
import os
import time
from pathlib import Path
from typing import Any

from amk.core.errors import FileWriteError, ValidationError
from amk.core.inputs import parse_json
from amk.io.files import atomic_file, write_atomically
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
        "best": None if best_config is None else {
            "evaluation": best.evaluation if best else None,  # None: a result taken from the corpus
            "from": None if best else state.known_best_source,
            "latency_us": state.incumbent_us,
            "config": best_config,
            "record_config": target.backend.record_config(target.workload, best_config),
        },
        "known_from_corpus": state.known,  # configs whose recorded result was taken, not evaluated again
        "known_best_us": state.known_best_us,
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
    else:
        ax.text(0.5, 0.5, "no config passed yet: no best so far", ha="center", va="center", transform=ax.transAxes)
    if result.target.floor_us:
        ax.axhline(result.target.floor_us, color="grey", linestyle="--", label="physical floor")
    ax.set_xlabel("evaluations")
    ax.set_ylabel(f"latency (us, {result.target.backend.measurement_kind.value})")
    ax.set_title(f"{result.target.workload.name} on {result.target.device.name} ({result.target.backend.name})")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    try:
        with atomic_file(path, "the plot", mode="wb") as f:
            fig.savefig(f, format="png")
    finally:
        plt.close(fig)
    return None


def run_dir(directory: Path, stem: str) -> Path:
    """Where a target's run reports live: ``DIRECTORY/STEM/`` (``stem``: ``amk.tuning.target.run_stem``)."""
    return directory / stem


def _point(link: Path, target_name: str) -> None:
    """Make ``link`` a relative symlink to ``target_name`` beside it, replaced atomically."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target_name, tmp)
    os.replace(tmp, link)


def write_report(result: TuneResult, settings: TuneSettings, directory: Path, stem: str,
                 store: str | None) -> dict[str, Any]:
    """Write this run's ``RUN_ID.report.json`` and ``RUN_ID.best.png`` into ``directory/stem/`` (one pair
    per run, so a new run never overwrites an earlier one's), each complete or not at all, and point
    ``latest.report.json`` and ``latest.best.png`` there at them; returns the report (with ``report`` and
    ``plot``: their paths). FileWriteError when a file cannot be written (a full disk, a read-only folder)."""
    folder = run_dir(directory.resolve(), stem)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FileWriteError(f"cannot create the report folder {folder}: {exc.strerror}; free disk space or "
                             "choose another [tune] state_dir.") from None
    run_id = result.state.run_id
    report = report_dict(result, settings, store)
    report["target"] = stem
    report["finished_at"] = time.time()
    png = folder / f"{run_id}.best.png"
    note = write_plot(result, png)
    report["plot"] = None if note else str(png)
    report["plot_note"] = note
    path = folder / f"{run_id}.report.json"
    write_atomically(path, json.dumps(report, indent=1, allow_nan=False, default=str), "the tune report")
    try:
        _point(folder / "latest.report.json", path.name)
        if not note:
            _point(folder / "latest.best.png", png.name)
    except OSError as exc:
        raise FileWriteError(f"cannot point {folder}/latest.* at run {run_id}: {exc.strerror}; the run's own "
                             f"report is {path}.") from None
    report["report"] = str(path)
    return report


def _not_a_report(report: Any) -> str | None:
    """Why a parsed JSON value is not a run report ``amk runs`` can list (None when it is one)."""
    if not isinstance(report, dict):
        return f"a JSON {type(report).__name__}, not a report object"
    for key, kinds in (("run_id", (str,)), ("workload", (dict,)), ("best", (dict,)),
                       ("finished_at", (int, float)), ("evaluations", (int,))):
        if report.get(key) is not None and not isinstance(report[key], kinds):
            return f"its {key!r} is {report[key]!r}, not a {' or '.join(k.__name__ for k in kinds)}"
    return None


def read_reports(directory: Path) -> list[dict[str, Any]]:
    """Every run report under ``directory`` (``*/RUN_ID.report.json``, the ``latest`` links left out),
    oldest first; a report that cannot be read is returned as ``{"report": path, "unreadable": why}``."""
    out = []
    for path in sorted(directory.glob("*/*.report.json")):
        if path.name.startswith("latest.") or path.is_symlink():
            continue
        try:
            report = parse_json(path.read_bytes(), max_bytes=None)
        except (OSError, ValidationError) as exc:
            out.append({"report": str(path), "unreadable": str(exc)})
            continue
        why = _not_a_report(report)
        if why:
            out.append({"report": str(path), "unreadable": why})
            continue
        report["report"] = str(path)
        report["latest"] = (path.parent / "latest.report.json").resolve() == path.resolve()
        out.append(report)
    return sorted(out, key=lambda r: (r.get("finished_at") or 0.0, r["report"]))
