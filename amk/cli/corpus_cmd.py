"""``amk corpus``: import, inspect, validate, migrate, copy and export the corpus."""

from __future__ import annotations

import itertools
import json
import os
import sys
from pathlib import Path

import click

from amk.cli.context import AppContext, pass_app
from amk.cli.problems import echo_problems, echo_unreadable
from amk.formats import EXPORT_NAMES


@click.group("corpus")
def corpus_group() -> None:
    """Import, inspect, validate, migrate, copy and export the corpus of measured points."""


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
    from amk.formats import read_file

    with app.open_store() as store:
        total_bad = 0
        for path in files:
            items, problems, duplicates = [], [], 0
            with app.progress(f"import {path.name}", unit="records") as progress:
                for item in progress.counted(read_file(path, fmt, device=device), status="read"):
                    if item.problem is not None:
                        problems.append(item.problem)
                    else:
                        items.append((None if allow_duplicates else record_id(item.record), item.record))
            # Only this file's records are looked up, by content: no store reads (nor hashes) all its records.
            known = set() if allow_duplicates else store.known_ids(dict(items))
            records = []
            for rid, record in items:
                if rid in known:
                    duplicates += 1
                    continue
                if not allow_duplicates:
                    known.add(rid)
                records.append(record)
            added = store.append(records)
            echo_problems(problems)
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
    from amk.cli.output import table

    click.echo(f"store: {where}")
    click.echo(f"records: {stats.total}")
    for title, counts in (("DEVICE", stats.by_device), ("KIND", stats.by_kind), ("VERDICT", stats.by_verdict)):
        if counts:
            click.echo("")
            table((title, "RECORDS"), list(counts.items()), right=("RECORDS",))
    if stats.by_workload:
        click.echo("")
        rows = []
        for key, n in stats.by_workload.items():
            shape = stats.shapes.get(key, {})
            known = {k: v for k, v in shape.items() if v not in (0, None)}
            rows.append((key, n, ", ".join(f"{k}={v}" for k, v in known.items()) or "shape unknown"))
        table(("WORKLOAD", "RECORDS", "SHAPE"), rows, right=("RECORDS",))
    echo_unreadable(problems)


@corpus_group.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["amk-jsonl", "kernel-tuner"]),
              help="Force the file format instead of detecting it.")
def validate_command(files: tuple[Path, ...], fmt: str | None) -> None:
    """Check FILES without importing: every bad record is reported as FILE:LINE: reason; exit 1 if any."""
    from amk.formats import read_file

    bad = 0
    for path in files:
        good, problems = 0, []
        for item in read_file(path, fmt):
            if item.problem is not None:
                problems.append(item.problem)
            else:
                good += 1
        echo_problems(problems)
        bad += len(problems)
        click.echo(f"{path}: {good} valid records, {len(problems)} bad")
    if bad:
        raise SystemExit(1)


@corpus_group.command("migrate")
@pass_app
def migrate_command(app: AppContext) -> None:
    """Rewrite the store in the current schema, keeping a backup of the original."""
    with app.open_store() as store, app.progress(f"migrate {store.describe()}", unit="records") as progress:
        progress.update(0, status="rewriting (the store reports no count until it is done)")
        report = store.migrate()
    click.echo(report)


@corpus_group.command("copy")
@click.argument("src", metavar="SRC_URL")
@click.argument("dst", metavar="DST_URL")
@click.option("--batch-size", type=click.IntRange(1), default=10_000, show_default=True,
              help="Records per append (one transaction in the SQL stores).")
@pass_app
def copy_command(app: AppContext, src: str, dst: str, batch_size: int) -> None:
    """Copy every record of the store SRC_URL into the store DST_URL (jsonl:PATH, sqlite:PATH, postgresql://...).

    Records are copied as they are (lossless) and in order; afterwards both stores are counted: the
    command exits 1 when an entry of SRC could not be read or the counts do not add up.
    """
    from amk.core.config import open_store
    from amk.core.errors import StoreError

    if src == dst:
        raise StoreError(f"SRC and DST are the same store {src!r}; name two different stores.")
    with open_store(src) as source, open_store(dst) as target:
        before = target.count()
        copied = 0
        records = source.query()
        with app.progress(f"copy to {target.describe()}", source.count(), unit="records") as progress:
            progress.update(0)
            while batch := list(itertools.islice(records, batch_size)):
                copied += target.append(batch)
                progress.update(copied)
        problems = source.problems()
        readable = source.count()
        after = target.count()
        echo_problems(problems, limit=20)
        click.echo(f"copied {copied} records from {source.describe()} to {target.describe()} "
                   f"(it held {before}, now {after})")
        if problems:
            click.echo(f"amk: error: {len(problems)} entries of {source.describe()} could not be read and were "
                       "not copied (listed above); fix or remove them, then copy again.", err=True)
            raise SystemExit(1)
        if copied != readable or after - before != copied:
            click.echo(f"amk: error: counts do not add up: {source.describe()} holds {readable} records, {copied} "
                       f"were copied, {target.describe()} grew by {after - before}; check both stores.", err=True)
            raise SystemExit(1)


@corpus_group.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (replaced when complete) instead of stdout.")
@click.option("--format", "fmt", default="jsonl", show_default=True, metavar="|".join(EXPORT_NAMES),
              help="Output format.")
@click.option("--device", help="Only records of this device.")
@click.option("--workload-kind", help="Only workloads of this kind (decode, kernel_tuner, ...).")
@click.option("--workload-name", help="Only the workload of this name.")
@click.option("--verdict", type=click.Choice(["PASS", "FAIL", "REJECTED", "TIMEOUT", "CRASH"]),
              help="Only records with this verdict.")
@click.option("--kind", type=click.Choice(["measured", "predicted", "replayed"]), help="Only this measurement kind.")
@click.option("--since", type=float, metavar="EPOCH_S", help="Only records measured at or after this time.")
@click.option("--until", type=float, metavar="EPOCH_S", help="Only records measured before this time.")
@pass_app
def export_command(app: AppContext, output: Path | None, fmt: str, device: str | None, workload_kind: str | None,
                   workload_name: str | None, verdict: str | None, kind: str | None, since: float | None,
                   until: float | None) -> None:
    """Write the store's records (those matching the filters) in the current schema.

    Entries the store cannot read are listed on stderr and make the command exit 1 after writing the rest.
    """
    from amk.core.errors import ExportError
    from amk.core.records import MeasurementKind, Verdict
    from amk.core.store import CorpusQuery
    from amk.formats import write_records

    if fmt not in EXPORT_NAMES:  # fails before the store is read
        raise ExportError(f"unknown export format {fmt!r}; the formats amk writes are {list(EXPORT_NAMES)}.")

    def writer(records, out):
        return write_records(records, out, fmt)

    query = CorpusQuery(device=device, workload_kind=workload_kind, workload_name=workload_name,
                        verdict=Verdict(verdict) if verdict else None, kind=MeasurementKind(kind) if kind else None,
                        since=since, until=until)
    with app.open_store() as store, app.progress(f"export {fmt}", store.count(query), unit="records") as progress:
        if output is None:
            written = writer(progress.counted(store.query(query)), sys.stdout)
        else:
            partial = output.with_name(output.name + ".partial")
            try:
                with partial.open("w", encoding="utf-8") as out:
                    written = writer(progress.counted(store.query(query)), out)
                os.replace(partial, output)
            finally:
                partial.unlink(missing_ok=True)
        problems = store.problems()
        where = store.describe()
    echo_problems(problems, limit=20)
    target = str(output) if output else "stdout"
    click.echo(f"exported {written} records from {where} to {target} as {fmt}", err=True)
    if problems:
        raise SystemExit(1)
