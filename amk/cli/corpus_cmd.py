"""``amk corpus``: import, inspect, validate, migrate, copy and export the corpus."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import click

from amk.cli.context import AppContext, pass_app
from amk.cli.params import FINITE
from amk.cli.problems import echo_problems, echo_unreadable
from amk.core.display import shown
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
            records, problems, repeated = {}, [], 0
            for item in read_file(path, fmt, device=device):
                if item.problem is not None:
                    problems.append(item.problem)
                elif allow_duplicates:
                    records[len(records)] = item.record
                else:
                    rid = record_id(item.record)
                    if rid in records:
                        repeated += 1  # the same record twice in this file
                    else:
                        records[rid] = item.record
            if allow_duplicates:
                added = store.append(list(records.values()))
            else:
                # The check and the append in one step (the store's lock or transaction): processes importing
                # the same file at once never duplicate a record. Only this file's records are looked up.
                added = store.append_new(records)
            duplicates = repeated + len(records) - added
            echo_problems(problems)
            total_bad += len(problems)
            dup_note = f", {duplicates} already in the store (skipped)" if duplicates else ""
            click.echo(f"{shown(path)}: imported {added} records into {shown(store.describe())}, "
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
    click.echo(f"store: {shown(where)}")
    click.echo(f"records: {stats.total}")
    for title, counts in (("by device", stats.by_device), ("by kind", stats.by_kind),
                          ("by verdict", stats.by_verdict)):
        click.echo(f"{title}:")
        for key, n in counts.items():
            click.echo(f"  {shown(key):<40} {n:>9}")
    click.echo("by workload:")
    for key, n in stats.by_workload.items():
        shape = stats.shapes.get(key, {})
        known = {k: v for k, v in shape.items() if v not in (0, None)}
        shape_text = ", ".join(f"{k}={v}" for k, v in known.items()) or "shape unknown"
        click.echo(f"  {shown(key):<40} {n:>9}   {shown(shape_text)}")
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
        click.echo(f"{shown(path)}: {good} valid records, {len(problems)} bad")
    if bad:
        raise SystemExit(1)


@corpus_group.command("migrate")
@pass_app
def migrate_command(app: AppContext) -> None:
    """Rewrite the store in the current schema, keeping a backup of the original."""
    with app.open_store() as store:
        report = store.migrate()
    click.echo(shown(report))


@corpus_group.command("copy")
@click.argument("src", metavar="SRC_URL")
@click.argument("dst", metavar="DST_URL")
@click.option("--batch-size", type=click.IntRange(1), default=10_000, show_default=True,
              help="Records per append (one transaction in the SQL stores).")
@click.option("--allow-duplicates", is_flag=True,
              help="Copy records even when an identical record is already in DST (as import's flag).")
def copy_command(src: str, dst: str, batch_size: int, allow_duplicates: bool) -> None:
    """Copy every record of the store SRC_URL into the store DST_URL (jsonl:PATH, sqlite:PATH, postgresql://...).

    Records are copied as they are (lossless) and in order; those DST already holds are skipped, as
    ``import`` skips them, and counted. Afterwards both stores are counted: the command exits 1 when an
    entry of SRC could not be read or the counts do not add up. SRC and DST must be two stores: the same
    file or database under two names is refused before anything is written.
    """
    from amk.core.config import open_store
    from amk.core.errors import StoreError
    from amk.core.records import record_id

    if src == dst:
        raise StoreError(f"SRC and DST are the same store {src!r}; name two different stores.")
    with open_store(src) as source, open_store(dst) as target:
        same = source.identity()
        if same is not None and same == target.identity():
            raise StoreError(f"SRC {source.describe()} and DST {target.describe()} are the same store under two "
                             "names; nothing was copied. Name two different stores.")
        before = target.count()
        copied = skipped = 0
        records = source.query()
        while batch := list(itertools.islice(records, batch_size)):
            if allow_duplicates:
                copied += target.append(batch)
                continue
            new: dict = {}
            for r in batch:
                new.setdefault(record_id(r), r)
            added = target.append_new(new)  # what DST holds is skipped, in one step with the append
            copied += added
            skipped += len(batch) - added
        problems = source.problems()
        readable = source.count()
        after = target.count()
        echo_problems(problems, limit=20)
        held = f", {skipped} already in it skipped" if skipped else ""
        click.echo(f"copied {copied} records from {shown(source.describe())} to {shown(target.describe())}"
                   f"{held} (it held {before}, now {after})")
        if problems:
            click.echo(f"amk: error: {len(problems)} entries of {shown(source.describe())} could not be read and "
                       "were not copied (listed above); fix or remove them, then copy again.", err=True)
            raise SystemExit(1)
        if copied + skipped != readable or after - before != copied:
            click.echo(f"amk: error: counts do not add up: {shown(source.describe())} holds {readable} records, "
                       f"{copied} were copied and {skipped} skipped, {shown(target.describe())} grew by "
                       f"{after - before}; check both stores.", err=True)
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
@click.option("--since", type=FINITE, metavar="EPOCH_S", help="Only records measured at or after this time.")
@click.option("--until", type=FINITE, metavar="EPOCH_S", help="Only records measured before this time.")
@pass_app
def export_command(app: AppContext, output: Path | None, fmt: str, device: str | None, workload_kind: str | None,
                   workload_name: str | None, verdict: str | None, kind: str | None, since: float | None,
                   until: float | None) -> None:
    """Write the store's records (those matching the filters) in the current schema.

    Entries the store cannot read are listed on stderr and make the command exit 1 after writing the rest.
    """
    from amk.core.errors import ExportError
    from amk.core.files import atomic_file
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
    with app.open_store() as store:
        if output is None:
            written = writer(store.query(query), sys.stdout)
        else:
            # A new temporary file renamed over OUTPUT when complete: never half an export under its name.
            with atomic_file(output, "the export") as out:
                written = writer(store.query(query), out)
        problems = store.problems()
        where = store.describe()
    echo_problems(problems, limit=20)
    target = str(output) if output else "stdout"
    click.echo(f"exported {written} records from {shown(where)} to {shown(target)} as {fmt}", err=True)
    if problems:
        raise SystemExit(1)
