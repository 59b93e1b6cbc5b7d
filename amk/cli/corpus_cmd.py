"""``amk corpus``: import, inspect, validate and migrate the corpus."""

from __future__ import annotations

import json
from pathlib import Path

import click

from amk.cli.context import AppContext, pass_app


@click.group("corpus")
def corpus_group() -> None:
    """Import, inspect, validate and migrate the corpus of measured points."""


def _echo_problems(problems, limit: int | None = None) -> None:
    for i, problem in enumerate(problems):
        if limit is not None and i >= limit:
            click.echo(f"... and {len(problems) - limit} more", err=True)
            break
        click.echo(f"{problem.where}: {problem.reason}", err=True)


@corpus_group.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["amk-jsonl", "kernel-tuner"]),
              help="Force the file format instead of detecting it.")
@click.option("--device", help="The device the data was measured on (overrides the file's; needed when it has none).")
@click.option("--allow-duplicates", is_flag=True,
              help="Append records even when an identical record is already in the store.")
@pass_app
def import_command(app: AppContext, files: tuple[Path, ...], fmt: str | None, device: str | None,
                   allow_duplicates: bool) -> None:
    """Import FILES (amk JSONL of any schema version, or Kernel Tuner caches) into the store.

    Valid records are appended; every bad entry is reported as FILE:LINE (or FILE#KEY): reason,
    and the command then exits 1.
    """
    from amk.core.records import record_id
    from amk.importers import read_file

    with app.open_store() as store:
        known = set() if allow_duplicates else {record_id(r) for r in store.query()}
        total_bad = 0
        for path in files:
            records, problems, duplicates = [], [], 0
            for item in read_file(path, fmt, device=device):
                if item.problem is not None:
                    problems.append(item.problem)
                    continue
                rid = record_id(item.record)
                if rid in known:
                    duplicates += 1
                    continue
                known.add(rid)
                records.append(item.record)
            added = store.append(records)
            _echo_problems(problems)
            total_bad += len(problems)
            dup_note = f", {duplicates} already in the store (skipped)" if duplicates else ""
            click.echo(f"{path}: imported {added} records into {store.describe()}, "
                       f"{len(problems)} bad entries{dup_note}")
    if total_bad:
        raise SystemExit(1)


@corpus_group.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@pass_app
def stats_command(app: AppContext, as_json: bool) -> None:
    """Counts of the store by device, workload (with its shape), kind and verdict."""
    import attrs

    with app.open_store() as store:
        stats = store.stats()
        problems = store.problems()
        where = store.describe()
    if as_json:
        click.echo(json.dumps({"store": where, **attrs.asdict(stats)}, indent=2))
        return
    click.echo(f"store: {where}")
    click.echo(f"records: {stats.total}")
    for title, counts in (("by device", stats.by_device), ("by kind", stats.by_kind),
                          ("by verdict", stats.by_verdict)):
        click.echo(f"{title}:")
        for key, n in counts.items():
            click.echo(f"  {key:<40} {n:>9}")
    click.echo("by workload:")
    for key, n in stats.by_workload.items():
        shape = stats.shapes.get(key, {})
        known = {k: v for k, v in shape.items() if v not in (0, None)}
        shape_text = ", ".join(f"{k}={v}" for k, v in known.items()) or "shape unknown"
        click.echo(f"  {key:<40} {n:>9}   {shape_text}")
    if problems:
        click.echo(f"unreadable entries: {len(problems)} (run 'amk corpus validate' on the file to list them)")


@corpus_group.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["amk-jsonl", "kernel-tuner"]),
              help="Force the file format instead of detecting it.")
def validate_command(files: tuple[Path, ...], fmt: str | None) -> None:
    """Check FILES without importing: every bad record is reported as FILE:LINE: reason; exit 1 if any."""
    from amk.importers import read_file

    bad = 0
    for path in files:
        good, problems = 0, []
        for item in read_file(path, fmt):
            if item.problem is not None:
                problems.append(item.problem)
            else:
                good += 1
        _echo_problems(problems)
        bad += len(problems)
        click.echo(f"{path}: {good} valid records, {len(problems)} bad")
    if bad:
        raise SystemExit(1)


@corpus_group.command("migrate")
@pass_app
def migrate_command(app: AppContext) -> None:
    """Rewrite the store in the current schema, keeping a backup of the original."""
    with app.open_store() as store:
        report = store.migrate()
    click.echo(report)
