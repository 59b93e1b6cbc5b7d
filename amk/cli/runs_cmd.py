"""``amk runs``: the past tune runs of each target, with their best, from the reports they left."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from amk.cli.context import AppContext, pass_app
from amk.io.display import shown


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch)) if epoch else "?"


def _what_there_is(reports: list[dict]) -> str:
    """For filters that matched nothing: the workloads, devices and backends the runs there have."""
    read = [r for r in reports if "unreadable" not in r]
    values = {"workloads": {f"{r.get('workload', {}).get('kind')}:{r.get('workload', {}).get('name')}" for r in read},
              "devices": {str(r.get("device")) for r in read}, "backends": {str(r.get("backend")) for r in read}}
    return " for these filters; the runs there are of " + "; ".join(
        f"{what} {', '.join(sorted(names))}" for what, names in values.items() if names)


@click.command("runs")
@click.option("--workload", "workload_spec", metavar="KIND:NAME", help="Only runs of this workload (or NAME alone).")
@click.option("--device", help="Only runs on this device (h100, a100, cpu-..., as tune named it).")
@click.option("--backend", "backend_name", help="Only runs with this backend.")
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where tune wrote its reports (default: [tune] state_dir).")
@click.option("--json", "as_json", is_flag=True, help="Print the reports' summaries as JSON.")
@pass_app
def runs_command(app: AppContext, workload_spec: str | None, device: str | None, backend_name: str | None,
                 report_dir: Path | None, as_json: bool) -> None:
    """List past `amk tune` runs, oldest first: each run's target, when it finished, its evaluations, its
    best latency (and kind: measured, predicted or replayed) and why it stopped; * marks each target's
    latest run. Every run keeps its report and plot, named by its run id."""
    from amk.cli.output import note, table
    from amk.core.devices import resolve_device
    from amk.tuning.report import read_reports
    from amk.tuning.settings import tune_settings

    directory = report_dir or Path(tune_settings(app.config).state_dir)
    device_name = resolve_device(device).name if device else None
    reports = read_reports(directory) if directory.is_dir() else []
    chosen = []
    for report in reports:
        if "unreadable" in report:
            note(f"{report['report']}: unreadable ({report['unreadable']}); left out")
            continue
        w = report.get("workload", {})
        if workload_spec and workload_spec not in (f"{w.get('kind')}:{w.get('name')}", w.get("name")):
            continue
        if device_name and report.get("device") != device_name:
            continue
        if backend_name and report.get("backend") != backend_name:
            continue
        chosen.append(report)
    if as_json:
        keys = ("run_id", "target", "workload", "device", "backend", "measurement_kind", "evaluations",
                "sessions", "stop_reason", "finished_at", "latest", "report", "plot")
        click.echo(json.dumps([{**{k: r.get(k) for k in keys}, "best_us": (r.get("best") or {}).get("latency_us")}
                               for r in chosen], indent=1))
        return
    if not chosen:
        click.echo(shown(f"no tune runs found in {directory}" + (_what_there_is(reports) if reports else "")),
                   err=True)
        return
    rows = []
    for r in chosen:
        best = r.get("best") or {}
        w = r.get("workload", {})
        rows.append((f"{w.get('kind')}:{w.get('name')}", r.get("device"), r.get("backend"),
                     str(r.get("run_id") or "?") + (" *" if r.get("latest") else ""), _when(r.get("finished_at")),
                     r.get("evaluations"),
                     f"{best['latency_us']:.3f}" if best.get("latency_us") is not None else "none",
                     r.get("measurement_kind"), r.get("stop_reason")))
    table(("WORKLOAD", "DEVICE", "BACKEND", "RUN", "FINISHED", "EVALS", "BEST US", "KIND", "STOPPED"), rows,
          right=("EVALS", "BEST US"))
    click.echo(f"reports and plots: {directory}/<target>/<run>.report.json, .best.png (latest.*: the newest)")
