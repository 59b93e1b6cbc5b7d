"""``amk warm-start``, ``amk rank`` and ``amk evaluate``: the prior on the command line."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import click

from amk.cli.context import AppContext, pass_app
from amk.cli.params import FINITE_NON_NEGATIVE, OUTPUT_FILE
from amk.cli.problems import echo_unreadable
from amk.cli.target import (
    KIND_CHOICES,
    WORKLOAD_HELP,
    note_left_out_kinds,
    parse_kinds,
    parse_workload,
    workload_options,
)
from amk.core.errors import AmkError, ValidationError
from amk.core.inputs import parse_json
from amk.io.display import shown


def _read_columns(app: AppContext):
    """The store's columns, read once; unreadable entries are counted on stderr, never skipped silently."""
    with app.open_store(reading=True) as store:
        columns = store.columns()
        problems = store.problems()
        where = store.describe()
    echo_unreadable(problems, where)
    return columns


def _number(x: float, digits: int = 3) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


@click.command("warm-start", epilog=WORKLOAD_HELP)
@workload_options
@click.option("-k", "k", type=click.IntRange(min=1), default=3, show_default=True, help="How many seeds.")
@click.option("--radius", "shape_radius", type=FINITE_NON_NEGATIVE, default=1.0, show_default=True,
              help="Shape distance within which workloads count as near (else any workload that transfers).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_app
def warm_start_command(app: AppContext, workload_spec: str, shape: str | None, problem_size: str | None,
                       device: str, kinds: tuple[str, ...], k: int, shape_radius: float, as_json: bool) -> None:
    """The best-known configs for a workload on a device, best first, with where each came from.

    Same shape first, else the nearest within --radius, else any workload that transfers; with no data
    for the device, from the most similar devices by their specs. No output (and a note) means a cold
    start: the corpus has nothing for this workload and device.
    """
    from amk.prior.warm_start import cold_start_reason, warm_start

    workload = parse_workload(workload_spec, shape, problem_size)
    columns = _read_columns(app)
    note_left_out_kinds(columns, workload.kind, parse_kinds(kinds), chosen=bool(kinds))
    seeds = warm_start(workload, device, columns, k=k, shape_radius=shape_radius, kinds=parse_kinds(kinds))
    if as_json:
        click.echo(json.dumps([{
            "config": s.config, "latency_us": s.latency_us, "relative": s.relative, "distance": s.distance,
            "beyond_radius": s.distance > shape_radius,
            "device": s.device, "workload": {"kind": s.workload.kind, "name": s.workload.name,
                                             "shape": s.workload.shape},
            "source": s.source,
        } for s in seeds], indent=2))
        return
    if not seeds:
        reason = cold_start_reason(workload, device, columns, parse_kinds(kinds))
        click.echo(f"no seeds (a cold start): {reason}", err=True)
        return
    for i, s in enumerate(seeds, 1):
        beyond = (f" BEYOND --radius {shape_radius:g}: no corpus shape is that near, it may not transfer"
                  if s.distance > shape_radius else "")
        click.echo(shown(f"#{i} {_number(s.latency_us)} us (x{_number(s.relative)} of its best) on {s.device}, "
                         f"{s.workload.kind}:{s.workload.name} at distance {_number(s.distance)}{beyond}, "
                         f"from {s.source}"))
        click.echo(f"   {json.dumps(s.config, sort_keys=True)}")
    far = sum(s.distance > shape_radius for s in seeds)
    if far:
        from amk.cli.output import note

        note(f"{far} of {len(seeds)} seed(s) come from shapes beyond --radius {shape_radius:g} (none in the corpus "
             "is nearer): treat them as guesses")


def _read_candidates(path: str) -> list[dict[str, Any]]:
    """A JSON array of config objects, or JSON Lines of them; ``-`` reads stdin."""
    text = sys.stdin.read() if path == "-" else _read_text(Path(path))
    stripped = text.strip()
    if stripped.startswith("["):
        try:  # within amk's input limits (nesting, integer size, valid strings): amk.core.inputs
            items = parse_json(stripped, max_bytes=None)
        except ValidationError as exc:
            raise ValidationError(f"{path}: {exc}; give a JSON array of config objects.") from None
        where = [f"{path}: item {i + 1}" for i in range(len(items))]
    else:
        items, where = [], []
        for lineno, line in enumerate(stripped.splitlines(), 1):
            if not line.strip():
                continue
            try:
                items.append(parse_json(line))
            except ValidationError as exc:
                raise ValidationError(f"{path}:{lineno}: {exc}; one config object per line.") from None
            where.append(f"{path}:{lineno}")
    if not items:
        what = "an empty array" if stripped else "empty"
        raise ValidationError(f"{'stdin' if path == '-' else path}: {what}: there are no candidates to rank; give a "
                              "JSON array of config objects, or one per line.")
    for item, w in zip(items, where):
        if not isinstance(item, dict):
            raise ValidationError(f"{w}: a candidate must be a JSON object of knob -> value, got {item!r}.")
    return items


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise ValidationError(f"{path}: cannot be read ({exc.strerror}); check the path.") from None
    except UnicodeDecodeError:
        raise ValidationError(f"{path}: not UTF-8 text; give a JSON array of config objects, or one per line.") \
            from None


@click.command("rank", epilog=WORKLOAD_HELP)
@click.argument("candidates", metavar="CANDIDATES")
@workload_options
@click.option("--device-only", is_flag=True, help="Train only on the device's own rows (default: all devices).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_app
def rank_command(app: AppContext, candidates: str, workload_spec: str, shape: str | None,
                 problem_size: str | None, device: str, kinds: tuple[str, ...], device_only: bool,
                 as_json: bool) -> None:
    """Order the configs in CANDIDATES (a JSON array, or one JSON object per line; - for stdin) best first.

    The prior is the config's [featurizer] and [ranker], trained on the store. While the store has too
    few usable rows the order is left as given (and a note says so).
    """
    from amk.core.devices import resolve_device
    from amk.core.featurizer import Featurizer
    from amk.core.ranker import Ranker
    from amk.prior.ranking import make_ranker

    workload = parse_workload(workload_spec, shape, problem_size)
    items = _read_candidates(candidates)
    config = app.config
    dev = resolve_device(device)
    columns = _read_columns(app)
    learn = parse_kinds(kinds)
    note_left_out_kinds(columns, workload.kind, learn, chosen=bool(kinds))
    _check_candidates(items, columns, workload, candidates)
    prior = make_ranker(columns, device=dev.name if device_only else None,
                        featurizer=config.create(Featurizer), ranker=config.create(Ranker), kinds=learn)
    scores = prior.score(workload, dev, items)
    if prior.trained:
        _note_what_the_ranking_cannot_use(columns, workload, dev)
    import numpy as np

    order = np.argsort(scores, kind="stable") if prior.trained else np.arange(len(items))
    if not prior.trained:
        click.echo(f"the prior is untrained ({prior.n_rows} usable rows); candidates are left in their order",
                   err=True)
    else:
        click.echo(f"score: the prior's predicted log of latency relative to the best known config of the same "
                   f"workload and device (lower is better; 0 = as fast as the best known, 0.69 = twice as slow); "
                   f"{_trained_on(prior, columns, learn, dev.name if device_only else None)}", err=True)
    if as_json:
        click.echo(json.dumps([{"rank": r + 1, "index": int(i), "score": float(scores[i]) if prior.trained else None,
                                "config": items[i]} for r, i in enumerate(order)], indent=2))
        return
    from amk.cli.output import table

    table(("RANK", "SCORE", "INPUT", "CONFIG"),
          [(f"#{r}", _number(float(scores[i]), 4), f"#{i + 1}", json.dumps(items[i], sort_keys=True))
           for r, i in enumerate(order, 1)], right=("SCORE",))


def _note_what_the_ranking_cannot_use(columns, workload, dev) -> None:
    """A note when the corpus measured this kernel only at shapes of another form than the one given (a
    missing --problem-size: every candidate then scores alike), or when the device's specs are unknown."""
    from amk.cli.output import note
    from amk.core.devices import KNOWN_DEVICES
    from amk.prior.distance import workload_distance

    same_kernel = [w for w in columns.workloads if w.kind == workload.kind and w.name == workload.name]
    if same_kernel and workload.kind != "decode" and \
            not any(math.isfinite(workload_distance(workload, w)) for w in same_kernel):
        shapes = "; ".join(sorted({json.dumps(w.shape, sort_keys=True) for w in same_kernel})[:3])
        given = json.dumps(workload.shape, sort_keys=True) if workload.shape else "none"
        note(f"the corpus has {workload.kind}:{workload.name} only with shapes of another form ({shapes}; given: "
             f"{given}), so its measurements of this kernel do not inform the scores: give one of that form "
             "(--problem-size or --shape)")
    if dev.arch is None and dev.mem_bandwidth_gbps is None and dev.name not in {d.name for d in columns.devices}:
        note(f"device {dev.name!r} is not one amk knows and the corpus has no records of it, so the scores cannot "
             f"weigh devices by similarity: name a known device ({', '.join(KNOWN_DEVICES)})")


def _trained_on(prior, columns, kinds, device: str | None) -> str:
    """What the prior learned from, in words: rows, kinds, workloads and devices."""
    from amk.core.records import Verdict

    rows = columns.mask(kinds=tuple(kinds), verdicts=(Verdict.PASS,), device=device)
    n_devices = len({columns.devices[int(d)].name for d in columns.device_index[rows]})
    n_workloads = len({int(w) for w in columns.workload_index[rows]})
    left_out = f", {prior.left_out} row(s) without a usable latency left out" if prior.left_out else ""
    return (f"trained on {prior.n_rows} {'/'.join(k.value for k in kinds)} PASS rows of {n_workloads} workload(s) "
            f"on {n_devices} device(s) (featurizer {prior.featurizer.name}, ranker {prior.ranker.name}){left_out}")


def _knob_values(config: dict, prefix: str = "") -> dict[str, object]:
    """Every knob of a config and its value: nested objects as dotted names (``kernel_knobs.cpasync``),
    lists as one value."""
    values: dict[str, object] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            values.update(_knob_values(value, f"{prefix}{key}."))
        else:
            values[f"{prefix}{key}"] = value
    return values


def _value_type(value: object) -> str:
    """The JSON type of a knob value in words; true/false count as numbers (true == 1 where knobs match)."""
    if value is None:
        return "null"
    if isinstance(value, (bool, int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    return "a list" if isinstance(value, list) else type(value).__name__


def _check_candidates(items: list[dict], columns, workload, path: str) -> None:
    """Check the candidates against the corpus configs of this workload (decode: of any decode workload);
    nothing to check when the corpus has none. ValidationError naming every candidate that lacks a knob
    each of those configs has, or gives a knob a value of a JSON type none of them has (the text "32"
    where the corpus has numbers: the prior would score it as an unknown category); a note naming the
    knobs no corpus config has (the prior cannot use them: candidates differing only there score alike)."""
    import numpy as np

    from amk.cli.output import note

    same = [i for i, w in enumerate(columns.workloads)
            if w.kind == workload.kind and (workload.kind == "decode" or w.name == workload.name)]
    if not same:
        return
    rows = np.isin(columns.workload_index, same)
    configs = [_knob_values(columns.configs[int(c)]) for c in np.unique(columns.config_index[rows])]
    expected = set.intersection(*(set(c) for c in configs))
    types: dict[str, set[str]] = {}
    for config in configs:
        for knob, value in config.items():
            types.setdefault(knob, set()).add(_value_type(value))
    given = [_knob_values(item) for item in items]
    target = f"{workload.kind}:{workload.name}"

    def listed(found: list[str]) -> str:
        return "; ".join(found[:5]) + (f"; and {len(found) - 5} more" if len(found) > 5 else "")

    partial = [f"#{n} lacks {', '.join(sorted(expected - set(values)))}"
               for n, values in enumerate(given, 1) if expected - set(values)]
    if partial:
        raise ValidationError(
            f"{path}: {len(partial)} of {len(items)} candidate(s) are partial configs ({listed(partial)}): every "
            f"{target} config in the corpus has these knobs; give each candidate all of them."
        )
    mistyped = [f"#{n} {knob} is {json.dumps(value) if value is None else f'{_value_type(value)} {json.dumps(value)}'}"
                f" where the corpus has {' or '.join(sorted(types[knob]))}"
                for n, values in enumerate(given, 1) for knob, value in values.items()
                if knob in types and _value_type(value) not in types[knob]]
    if mistyped:
        raise ValidationError(
            f"{path}: {len(mistyped)} knob value(s) of a type no {target} config in the corpus has "
            f"({listed(mistyped)}); give each value as the corpus has it (2, not \"2\")."
        )
    unknown = sorted({knob for values in given for knob in values if knob not in types})
    if unknown:
        with_them = sum(1 for values in given if set(values) - set(types))
        note(f"{path}: {with_them} candidate(s) have knob(s) no {target} config in the corpus has "
             f"({', '.join(unknown)}): the prior cannot use them, so candidates that differ only there score alike")


@click.command("evaluate")
@click.option("--split", type=click.Choice(["device", "workload", "target", "both", "all"]), default="device",
              show_default=True,
              help="Hold out in turn each device, each workload, or each target (one workload on one device, "
                   "the rest of the corpus kept); both = device and workload; all = the three.")
@click.option("--ranker", "rankers", multiple=True,
              help="Ranker to evaluate (repeatable; default: every installed ranker that can run here).")
@click.option("--featurizer", default=None, help="Featurizer to use (default: the config's).")
@click.option("--no-baseline", is_flag=True, help="Leave out the pooled-replay baseline.")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(KIND_CHOICES),
              help="Measurement kinds to learn from and evaluate on (repeatable; default: measured).")
@click.option("--json", "json_path", type=OUTPUT_FILE,
              help="Also write the per-group results to this file as a JSON list.")
@pass_app
def evaluate_command(app: AppContext, split: str, rankers: tuple[str, ...], featurizer: str | None,
                     no_baseline: bool, kinds: tuple[str, ...], json_path: Path | None) -> None:
    """Offline evaluation: train on all but one device (workload, target), rank the held-out configs, score the order.

    \b
    Per held-out workload + device group:
      top1 / top5 / top20  best latency / best latency among the first 1, 5, 20 ranked configs
      spearman             rank correlation of score and latency
      ndcg10               NDCG@10 with gain = best latency / latency
      evals_to_5pct        configs measured in ranked order until one is within 5% of the best
    pooled-replay is the baseline: configs ordered by their mean latency relative to each training
    group's best. A table of means per ranker follows the per-group rows.
    """
    import attrs

    from amk.core.errors import UnknownNameError
    from amk.core.featurizer import Featurizer
    from amk.core.plugins import get_registry
    from amk.core.ranker import Ranker
    from amk.prior.evaluation import evaluate, summarize

    registry = get_registry()
    # An unknown name is a usage error (exit 2), one whose dependency is missing a clear error: before any work.
    for kind, option, names in ((Featurizer, "'--featurizer'", [featurizer] if featurizer else []),
                                (Ranker, "'--ranker'", rankers)):
        for name in names:
            try:
                registry.create(kind, name)
            except UnknownNameError as exc:
                raise click.BadParameter(str(exc), param_hint=option) from None
    if rankers:
        names = list(rankers)
    else:
        names = [n for n in registry.names(Ranker) if not registry.get(Ranker, n).missing_requirements]
    config = app.config
    configured = config.selection("ranker").name
    specs = [config.create(Ranker) if n == configured else n for n in names]
    feat = featurizer or config.selection("featurizer").name
    splits = {"both": ("device", "workload"), "all": ("device", "workload", "target")}.get(split, (split,))
    columns = _read_columns(app)
    note_left_out_kinds(columns, None, parse_kinds(kinds), chosen=bool(kinds))
    with app.progress("evaluate", unit="folds") as progress:
        results = evaluate(columns, splits=splits, rankers=specs, featurizer=feat, baseline=not no_baseline,
                           kinds=parse_kinds(kinds), progress=progress.report)
    if not results:
        raise AmkError(f"nothing to evaluate: the store needs {'/'.join(k.value for k in parse_kinds(kinds))} PASS "
                       "rows on at least two devices (or workloads) to hold one out; import some with 'amk corpus "
                       "import' (--kind chooses which measurement kinds count).")
    if json_path:
        json_path.write_text(json.dumps([attrs.asdict(r) for r in results], indent=2))
    from amk.cli.output import table

    table(("SPLIT", "RANKER", "WORKLOAD", "DEVICE", "CONFIGS", "TOP1", "TOP5", "TOP20", "SPEARMAN", "NDCG10", "TO 5%"),
          [(r.split, r.ranker, r.workload, r.device, r.n_configs, f"{r.top1:.3f}", f"{r.top5:.3f}", f"{r.top20:.3f}",
            f"{r.spearman:.3f}", f"{r.ndcg10:.3f}", r.evals_to_5pct) for r in results],
          right=("CONFIGS", "TOP1", "TOP5", "TOP20", "SPEARMAN", "NDCG10", "TO 5%"))
    click.echo("")
    table(("SPLIT", "RANKER", "GROUPS", "TOP1", "TOP5", "TOP20", "SPEARMAN", "NDCG10", "TO 5%", "FIT S"),
          [(m["split"], m["ranker"], m["groups"], f"{m['top1']:.3f}", f"{m['top5']:.3f}", f"{m['top20']:.3f}",
            f"{m['spearman']:.3f}", f"{m['ndcg10']:.3f}", f"{m['evals_to_5pct']:.1f}", f"{m['fit_seconds']:.2f}")
           for m in summarize(results)],
          right=("GROUPS", "TOP1", "TOP5", "TOP20", "SPEARMAN", "NDCG10", "TO 5%", "FIT S"), title="means per ranker")
    if json_path:
        click.echo(f"results written to {json_path}")
