"""``amk corpus``: import, inspect, validate, migrate, copy and export the corpus."""

from __future__ import annotations

import itertools
import json
import os
import sys
from pathlib import Path

import click

from amk.cli.context import AppContext, pass_app, store_file_missing
from amk.cli.output import note
from amk.cli.params import FINITE, OUTPUT_OR_STDOUT, STORE_URL
from amk.cli.problems import echo_problems, echo_unreadable
from amk.formats import EXPORT_NAMES, FORMATS
from amk.io.display import shown


@click.group("corpus")
def corpus_group() -> None:
    """Import, inspect, validate, migrate, copy and export the corpus of measured points."""


# In a folder, the files amk reads: the names its formats are written under (others are listed as skipped).
DATA_SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz", ".gz")
FORMAT_CHOICES = [name for fmt in FORMATS for name in (fmt.name, *fmt.aliases)]
# What amk tune writes under [tune] state_dir (amk.tuning.state, amk.tuning.report); the folder may hold others'.
TUNE_FILES = (".state.json", ".state.json.lock", ".report.json", ".best.png")


def _input_files(paths: tuple[Path, ...], app: AppContext) -> list[Path]:
    """The files named, and the data files under each folder named (sorted); other files in a folder are
    said in one note, and so are the files amk itself keeps there (the store's file, the reports and state
    under ``[tune] state_dir``): importing them would append the store to itself, or read a report as data."""
    from amk.io.files import file_identity
    from amk.tuning.settings import tune_settings

    store_path = getattr(app.config.options("store"), "path", None)
    store_id = file_identity(store_path) if isinstance(store_path, str) else None
    store_side = Path(store_path).resolve() if isinstance(store_path, str) else None  # its .columns.npz, .torn, .bak
    state_dir = Path(tune_settings(app.config).state_dir).resolve()
    files, skipped, own = [], [], []
    for path in paths:
        if not path.is_dir():
            files.append(path)
            continue
        found_before = len(files)
        regular, unreadable = _entries_under(path)
        skipped.extend(unreadable)
        for found in regular:
            where = found.resolve()
            if file_identity(found) == store_id or (where.is_relative_to(state_dir) and where.name.endswith(TUNE_FILES)) or (
                    store_side is not None and where.parent == store_side.parent
                    and where.name.startswith(f"{store_side.name}.")):
                own.append(found)
            else:
                (files if found.name.endswith(DATA_SUFFIXES) else skipped).append(found)
        if len(files) == found_before:
            click.echo(f"amk: note: {shown(path)}: the folder holds no data file to read", err=True)
    if own:
        click.echo(f"amk: note: {len(own)} file(s) in the folders given are amk's own (the store "
                   f"{shown(store_path)}, the tune reports and state under {shown(state_dir)}) and were not read: "
                   f"{_listed(own)}", err=True)
    if skipped:
        click.echo(f"amk: note: {len(skipped)} file(s) in the folders given are no data files "
                   f"({', '.join(DATA_SUFFIXES)}, regular files or links to them) and were not read: "
                   f"{_listed(skipped)}", err=True)
    return files


def _entries_under(folder: Path) -> tuple[list[Path], list[Path]]:
    """(the regular files under ``folder``, the other entries there: broken links, pipes, sockets, folders
    that cannot be listed), both sorted. Linked folders are followed (each real folder once, so a link to a parent ends there), as a link
    to a file is: a folder of links is read like the folder it links to."""
    regular, other, seen = [], [], set()
    for top, dirs, names in os.walk(folder, followlinks=True, onerror=lambda exc: other.append(Path(exc.filename))):
        real = os.stat(top)
        if (real.st_dev, real.st_ino) in seen:
            dirs.clear()
            continue
        seen.add((real.st_dev, real.st_ino))
        for name in names:
            found = Path(top, name)
            (regular if found.is_file() else other).append(found)
    return sorted(regular), sorted(other)


def _listed(paths: list[Path]) -> str:
    return ", ".join(shown(p) for p in paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")


def _read_input(path: Path, fmt: str | None, options, progress=None):
    """(records, problems) of one file, its notes said on stderr (``progress``: counts the entries read,
    records and bad entries; a note is no entry); a file that cannot be read at all is one problem."""
    from amk.core.errors import ImportFormatError
    from amk.core.store import CorpusProblem
    from amk.formats import read_file

    records, problems = [], []
    if progress:
        progress.update(0, "read")
    try:
        for item in read_file(path, fmt, options=options):
            if item.record is not None:
                records.append(item.record)
            elif item.problem is not None:
                problems.append(item.problem)
            else:
                click.echo(f"amk: note: {shown(item.note.where)}: {shown(item.note.message)}", err=True)
                continue
            if progress and (len(records) + len(problems)) % 10_000 == 0:
                progress.update(len(records) + len(problems), "read")
    except ImportFormatError as exc:
        return [], [CorpusProblem(str(path), str(exc).removeprefix(f"{path}: "))]
    finally:
        if progress:
            progress.update(len(records) + len(problems), "read")
    return records, problems


def _named_device(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--device as given, refused (a usage error) when blank: it would be refused for every file read."""
    if value is not None and not value.strip():
        raise click.BadParameter(f"{value!r} names no device; give e.g. --device a100 or the full name "
                                 "'NVIDIA A100-PCIE-40GB'.")
    return value


def input_options(func):
    """The options of commands that read tuning files: --format, --device, --t1, --kernel, --problem-size."""
    for option in reversed((
        click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES),
                     help="Force the file format instead of detecting it from the file's structure."),
        click.option("--device", callback=_named_device,
                     help="The device the data was measured on (overrides the file's; needed when it "
                          "names none: a Kernel Tuner cache with an empty device_name, a Triton file)."),
        click.option("--t1", "t1", type=click.Path(dir_okay=False, exists=True, path_type=Path),
                     help="T4 results: the T1 input file of their kernel (default: the one T1 file beside them)."),
        click.option("--kernel", help="T4 results without a T1 file: the kernel's name."),
        click.option("--problem-size", metavar="N,N,...", help="T4 results with --kernel: the problem size."),
    )):
        func = option(func)
    return func


def _import_options(device, t1, kernel, problem_size):
    from amk.cli.target import parse_problem_size
    from amk.formats import ImportOptions

    return ImportOptions(device=device, t1=t1, kernel=kernel,
                         problem_size=parse_problem_size(problem_size) if problem_size else None)


@corpus_group.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@input_options
@click.option("--allow-duplicates", is_flag=True,
              help="Append records even when a record of the same content is already in the store.")
@pass_app
def import_command(app: AppContext, files: tuple[Path, ...], fmt: str | None, device: str | None, t1: Path | None,
                   kernel: str | None, problem_size: str | None, allow_duplicates: bool) -> None:
    """Import FILES and folders (every data file under them) into the store: amk JSONL of any schema
    version, Kernel Tuner caches, T4 results, Triton autotune files; the format of each is detected from
    its structure.

    Valid records are appended; every bad entry is reported as FILE:LINE (or FILE#KEY): reason, and the
    command then exits 1. A record whose content the store already holds (wherever it was read from) is
    skipped and counted.
    """
    from amk.core.records import content_id
    from amk.io.files import file_identity

    options = _import_options(device, t1, kernel, problem_size)
    paths = _input_files(files, app)
    with app.open_store() as store:
        identity = store.identity()
        itself = next((p for p in paths if identity is not None and file_identity(p) == identity), None)
        if itself is not None:
            raise click.UsageError(f"{shown(itself)} is the store being imported into ({shown(store.describe())}); "
                                   "nothing was imported: leave it out of FILES, or choose another store with --store")
        total_bad = 0
        for path in paths:
            with app.progress(f"import {path.name}", unit="records") as progress:
                records, problems = _read_input(path, fmt, options, progress)
            if allow_duplicates:
                added, duplicates = store.append(records), 0
            else:
                # By content (wherever it was read from): the same record twice in this file counts once.
                # The check and the append in one step (the store's lock or transaction): processes
                # importing the same file at once never duplicate a record. Only this file's records are
                # looked up, never the whole store.
                unique: dict[str, object] = {}
                for record in records:
                    unique.setdefault(content_id(record), record)
                added = store.append_new(unique, identity=content_id)
                duplicates = len(records) - added
            echo_problems(problems)
            total_bad += len(problems)
            dup_note = f", {duplicates} already in the store (skipped)" if duplicates else ""
            click.echo(f"{shown(path)}: imported {added} records into {shown(store.describe())}, "
                       f"{len(problems)} bad entries{dup_note}")
    if total_bad:
        raise SystemExit(1)


MAX_SHAPE_ROWS = 20  # shapes of one workload that stats lists a row each; the rest share one row


def _shape_text(workload: str, shape: dict) -> str:
    """``key=value, ...`` of a shape, values as JSON writes them (``true``, ``[1, 2]``), strings bare; a decode
    shape leaves out its unknown (0) fields. ``shape unknown`` only for a shape with nothing in it."""
    decode = workload.startswith("decode:")
    known = {k: v for k, v in shape.items() if v is not None and not (decode and v == 0 and not isinstance(v, bool))}
    return ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in known.items()) or "shape unknown"


@corpus_group.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@pass_app
def stats_command(app: AppContext, as_json: bool) -> None:
    """Counts of the store by device, workload (one row per shape: a workload name measured at several
    shapes or problem sizes has a row for each), kind and verdict."""
    import attrs

    with app.open_store(reading=True) as store:
        stats = store.stats()
        problems = store.problems()
        where = store.describe()
    if as_json:
        click.echo(json.dumps({"store": where, **attrs.asdict(stats)}, indent=2))
        return
    from amk.cli.output import table

    click.echo(f"store: {shown(where)}")
    click.echo(f"records: {stats.total}")
    for title, counts in (("DEVICE", stats.by_device), ("KIND", stats.by_kind), ("VERDICT", stats.by_verdict)):
        if counts:
            click.echo("")
            table((title, "RECORDS"), list(counts.items()), right=("RECORDS",))
    if stats.by_workload:
        click.echo("")
        rows = []
        for key in stats.by_workload:
            shapes = stats.shapes.get(key, [])  # a row per shape (a workload measured at several sizes), most first
            for shape in shapes[:MAX_SHAPE_ROWS]:
                rows.append((key, shape["records"], _shape_text(key, shape["shape"])))
            if len(shapes) > MAX_SHAPE_ROWS:
                rest = shapes[MAX_SHAPE_ROWS:]
                rows.append((key, sum(s["records"] for s in rest), f"{len(rest)} more shapes (--json lists them)"))
        table(("WORKLOAD", "RECORDS", "SHAPE"), rows, right=("RECORDS",))
    echo_unreadable(problems)


@corpus_group.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@input_options
@pass_app
def validate_command(app: AppContext, files: tuple[Path, ...], fmt: str | None, device: str | None, t1: Path | None,
                     kernel: str | None, problem_size: str | None) -> None:
    """Check FILES (and the data files under folders) without importing: every bad entry is reported as
    FILE:LINE (or FILE#KEY): reason; every file is checked, and the command exits 1 if any entry was bad."""
    options = _import_options(device, t1, kernel, problem_size)
    bad = 0
    for path in _input_files(files, app):
        records, problems = _read_input(path, fmt, options)
        echo_problems(problems)
        bad += len(problems)
        click.echo(f"{shown(path)}: {len(records)} valid records, {len(problems)} bad")
    if bad:
        raise SystemExit(1)


@corpus_group.command("migrate")
@pass_app
def migrate_command(app: AppContext) -> None:
    """Rewrite the store in the current schema, keeping a backup of the original."""
    with app.open_store() as store, app.progress(f"migrate {store.describe()}", unit="records") as progress:
        progress.update(0, status="rewriting (the store reports no count until it is done)")
        report = store.migrate()
    click.echo(shown(report))


@corpus_group.command("copy")
@click.argument("src", metavar="SRC_URL", type=STORE_URL)
@click.argument("dst", metavar="DST_URL", type=STORE_URL)
@click.option("--batch-size", type=click.IntRange(1), default=10_000, show_default=True,
              help="Records per append (one transaction in the SQL stores).")
@click.option("--allow-duplicates", is_flag=True,
              help="Copy records even when an identical record is already in DST (as import's flag).")
@pass_app
def copy_command(app: AppContext, src: str, dst: str, batch_size: int, allow_duplicates: bool) -> None:
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
        if store_file_missing(source):
            raise StoreError(f"SRC {source.describe()} does not exist; nothing was copied. Check the path.")
        same = source.identity()
        if same is not None and same == target.identity():
            raise StoreError(f"SRC {source.describe()} and DST {target.describe()} are the same store under two "
                             "names; nothing was copied. Name two different stores.")
        before = target.count()
        copied = skipped = 0
        records = source.query()
        with app.progress(f"copy to {target.describe()}", source.count(), unit="records") as progress:
            progress.update(0)
            while batch := list(itertools.islice(records, batch_size)):
                if allow_duplicates:
                    copied += target.append(batch)
                else:
                    new: dict[str, object] = {}
                    for r in batch:
                        new.setdefault(record_id(r), r)
                    added = target.append_new(new)  # what DST holds is skipped, in one step with the append
                    copied += added
                    skipped += len(batch) - added
                progress.update(copied + skipped)
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


def _what_matches_nothing(store, device: str | None, workload_kind: str | None, workload_name: str | None,
                          wanted_shape: dict | None = None) -> str | None:
    """Which of the device, workload and shape filters selects nothing, with what the store holds instead
    (the likely fix of a typo); None when each of them matches something."""
    devices = sorted(store.stats().by_device)
    if device and device not in devices:
        return f"the store holds no records of --device {device!r}; its devices: {', '.join(devices) or 'none'}"
    if not (workload_kind or workload_name or wanted_shape):
        return None
    held = store.workloads(device=device)
    where = f" on {device}" if device else ""
    named = [w for w in held
             if (not workload_kind or w.kind == workload_kind) and (not workload_name or w.name == workload_name)]
    if named and wanted_shape:
        if any(all(k in w.shape and w.shape[k] == v for k, v in wanted_shape.items()) for w in named):
            return None
        shapes = sorted({json.dumps(w.shape, sort_keys=True) for w in named})
        listed = "; ".join(shapes[:5]) + (f" (and {len(shapes) - 5} more)" if len(shapes) > 5 else "")
        return (f"no workload{where} has the shape {json.dumps(wanted_shape, sort_keys=True)} (--problem-size, "
                f"--shape); the shapes of the workloads the other filters select: {listed}")
    if named:
        return None
    given = " ".join(f"{flag} {value!r}" for flag, value in (("--workload-kind", workload_kind),
                                                             ("--workload-name", workload_name)) if value)
    names = sorted({f"{w.kind}:{w.name}" for w in held})
    listed = ", ".join(names[:10]) + (f" (and {len(names) - 10} more)" if len(names) > 10 else "")
    hint = ""
    if workload_name and workload_name in names:
        kind, _, name = workload_name.partition(":")
        hint = f"; pass it as --workload-kind {kind} --workload-name {name}"
    return f"no workload{where} matches {given}; the store's workloads{where}: {listed or 'none'}{hint}"


@corpus_group.command("export")
@click.option("-o", "--output", type=OUTPUT_OR_STDOUT,
              help="Write to this file (replaced when complete) instead of stdout (also: -o -).")
@click.option("--format", "fmt", default="jsonl", show_default=True, metavar="|".join(EXPORT_NAMES),
              help="Output format.")
@click.option("--device", help="Only records of this device.")
@click.option("--workload-kind", help="Only workloads of this kind (decode, kernel_tuner, ...).")
@click.option("--workload-name", help="Only the workload of this name.")
@click.option("--problem-size", metavar="N,N,...", help="Only workloads of this problem size (shape problem_size).")
@click.option("--shape", metavar="KEY=VALUE,...", help="Only workloads whose shape has these values (or a JSON object).")
@click.option("--verdict", type=click.Choice(["PASS", "FAIL", "REJECTED", "TIMEOUT", "CRASH"]),
              help="Only records with this verdict.")
@click.option("--kind", type=click.Choice(["measured", "predicted", "replayed"]), help="Only this measurement kind.")
@click.option("--since", type=FINITE, metavar="EPOCH_S", help="Only records measured at or after this time.")
@click.option("--until", type=FINITE, metavar="EPOCH_S", help="Only records measured before this time.")
@pass_app
def export_command(app: AppContext, output: Path | None, fmt: str, device: str | None, workload_kind: str | None,
                   workload_name: str | None, problem_size: str | None, shape: str | None, verdict: str | None,
                   kind: str | None, since: float | None, until: float | None) -> None:
    """Write the store's records (those matching the filters): as amk JSONL in the current schema, or as one
    Kernel Tuner cache or T4 results file (one kernel on one device at one problem size: an export that
    spans more says what differs and which filter chooses).

    Entries the store cannot read are listed on stderr and make the command exit 1 after writing the rest.
    """
    from amk.cli.target import parse_problem_size, parse_shape
    from amk.core.errors import ExportError
    from amk.core.records import MeasurementKind, Verdict
    from amk.core.store import CorpusQuery
    from amk.formats import write_records
    from amk.io.files import atomic_file

    if fmt not in EXPORT_NAMES:  # an unknown name fails before the store is read
        what = f"amk reads {fmt} files but does not write them" if fmt in FORMAT_CHOICES else \
            f"unknown export format {fmt!r}"
        raise ExportError(f"{what}; the formats amk writes are {list(EXPORT_NAMES)}.")

    def writer(records, out):
        return write_records(records, out, fmt)

    wanted_shape = parse_shape(shape)
    if problem_size:
        wanted_shape["problem_size"] = parse_problem_size(problem_size)
    if device:
        from amk.core.devices import normalize_device_name

        device = normalize_device_name(device)
    query = CorpusQuery(device=device, workload_kind=workload_kind, workload_name=workload_name,
                        verdict=Verdict(verdict) if verdict else None, kind=MeasurementKind(kind) if kind else None,
                        since=since, until=until)

    def selected(store):
        records = store.query(query)
        if not wanted_shape:
            return records
        return (r for r in records if all(k in r.workload.shape and r.workload.shape[k] == v
                                          for k, v in wanted_shape.items()))

    with app.open_store(reading=True) as store:
        total = store.count(query)
        nothing = _what_matches_nothing(store, device, workload_kind, workload_name, wanted_shape) \
            if total == 0 or wanted_shape else None
        if nothing and fmt in ("kernel-tuner", "t4"):
            raise ExportError(f"no records to export: {nothing}.")
        if nothing:
            note(f"nothing to export: {nothing}")
        with app.progress(f"export {fmt}", total, unit="records") as progress:
            if output is None:
                written = writer(progress.counted(selected(store)), sys.stdout)
            else:
                # A new temporary file renamed over OUTPUT when complete: never half an export under its name.
                with atomic_file(output, "the export") as out:
                    written = writer(progress.counted(selected(store)), out)
        problems = store.problems()
        where = store.describe()
    echo_problems(problems, limit=20)
    target = str(output) if output else "stdout"
    click.echo(f"exported {written} records from {shown(where)} to {shown(target)} as {fmt}", err=True)
    if problems:
        raise SystemExit(1)
