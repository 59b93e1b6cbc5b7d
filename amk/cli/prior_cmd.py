"""``amk warm-start``, ``amk rank`` and ``amk evaluate``: the prior on the command line."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import click

from amk.cli.context import AppContext, pass_app
from amk.cli.problems import echo_unreadable
from amk.cli.target import KIND_CHOICES, WORKLOAD_HELP, parse_kinds, parse_workload, workload_options
from amk.core.errors import AmkError, ValidationError


def _read_columns(app: AppContext):
    """The store's columns, read once; unreadable entries are counted on stderr, never skipped silently."""
    with app.open_store() as store:
        columns = store.columns()
        problems = store.problems()
        where = store.describe()
    echo_unreadable(problems, where)
    return columns


def _number(x: float, digits: int = 3) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


@click.command("warm-start", epilog=WORKLOAD_HELP)
@workload_options
@click.option("-k", "k", default=3, show_default=True, help="How many seeds.")
@click.option("--radius", "shape_radius", default=1.0, show_default=True,
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
    seeds = warm_start(workload, device, columns, k=k, shape_radius=shape_radius, kinds=parse_kinds(kinds))
    if as_json:
        click.echo(json.dumps([{
            "config": s.config, "latency_us": s.latency_us, "relative": s.relative, "distance": s.distance,
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
        click.echo(f"#{i} {_number(s.latency_us)} us (x{_number(s.relative)} of its best) on {s.device}, "
                   f"{s.workload.kind}:{s.workload.name} at distance {_number(s.distance)}, from {s.source}")
        click.echo(f"   {json.dumps(s.config, sort_keys=True)}")


def _read_candidates(path: str) -> list[dict[str, Any]]:
    """A JSON array of config objects, or JSON Lines of them; ``-`` reads stdin."""
    text = sys.stdin.read() if path == "-" else _read_text(Path(path))
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"{path}: not valid JSON ({exc}); give a JSON array of config objects.") from None
        where = [f"{path}: item {i + 1}" for i in range(len(items))]
    else:
        items, where = [], []
        for lineno, line in enumerate(stripped.splitlines(), 1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValidationError(f"{path}:{lineno}: not valid JSON ({exc}); one config object per line.") \
                    from None
            where.append(f"{path}:{lineno}")
    for item, w in zip(items, where):
        if not isinstance(item, dict):
            raise ValidationError(f"{w}: a candidate must be a JSON object of knob -> value, got {item!r}.")
    return items


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise ValidationError(f"{path}: cannot be read ({exc.strerror}); check the path.") from None


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
    prior = make_ranker(_read_columns(app), device=dev.name if device_only else None,
                        featurizer=config.create(Featurizer), ranker=config.create(Ranker), kinds=parse_kinds(kinds))
    scores = prior.score(workload, dev, items)
    import numpy as np

    order = np.argsort(scores, kind="stable") if prior.trained else np.arange(len(items))
    if not prior.trained:
        click.echo(f"the prior is untrained ({prior.n_rows} usable rows); candidates are left in their order",
                   err=True)
    elif prior.left_out:
        click.echo(f"amk: note: {prior!r}", err=True)
    if as_json:
        click.echo(json.dumps([{"rank": r + 1, "index": int(i), "score": float(scores[i]) if prior.trained else None,
                                "config": items[i]} for r, i in enumerate(order)], indent=2))
        return
    for r, i in enumerate(order, 1):
        click.echo(f"#{r:<4} score {_number(float(scores[i]), 4):>8}  (input #{i + 1})  {json.dumps(items[i], sort_keys=True)}")


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
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
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

    from amk.core.plugins import get_registry
    from amk.core.ranker import Ranker
    from amk.prior.evaluation import evaluate, summarize

    registry = get_registry()
    if rankers:
        names = list(rankers)
        for name in names:
            registry.create(Ranker, name)  # unknown or not installed: a clear error now
    else:
        names = [n for n in registry.names(Ranker) if not registry.get(Ranker, n).missing_requirements]
    config = app.config
    configured = config.selection("ranker").name
    specs = [config.create(Ranker) if n == configured else n for n in names]
    feat = featurizer or config.selection("featurizer").name
    splits = {"both": ("device", "workload"), "all": ("device", "workload", "target")}.get(split, (split,))
    results = evaluate(_read_columns(app), splits=splits, rankers=specs, featurizer=feat,
                       baseline=not no_baseline, kinds=parse_kinds(kinds))
    if not results:
        raise AmkError("nothing to evaluate: the store needs measured PASS rows on at least two devices "
                       "(or workloads) to hold one out; import some with 'amk corpus import'.")
    if json_path:
        json_path.write_text(json.dumps([attrs.asdict(r) for r in results], indent=2))
    header = f"{'split':<9}{'ranker':<15}{'workload':<34}{'device':<10}{'configs':>8}" \
             f"{'top1':>7}{'top5':>7}{'top20':>7}{'spear':>7}{'ndcg10':>7}{'to5%':>7}"
    click.echo(header)
    for r in results:
        click.echo(f"{r.split:<9}{r.ranker:<15}{r.workload[:33]:<34}{r.device[:9]:<10}"
                   f"{r.n_configs:>8}{r.top1:>7.3f}{r.top5:>7.3f}{r.top20:>7.3f}{r.spearman:>7.3f}"
                   f"{r.ndcg10:>7.3f}{r.evals_to_5pct:>7}")
    click.echo("")
    click.echo(f"{'split':<9}{'ranker':<15}{'groups':>7}{'top1':>8}{'top5':>8}{'top20':>8}{'spear':>8}"
               f"{'ndcg10':>8}{'to5%':>9}{'fit s':>8}")
    for s in summarize(results):
        click.echo(f"{s['split']:<9}{s['ranker']:<15}{s['groups']:>7}{s['top1']:>8.3f}{s['top5']:>8.3f}"
                   f"{s['top20']:>8.3f}{s['spearman']:>8.3f}{s['ndcg10']:>8.3f}{s['evals_to_5pct']:>9.1f}"
                   f"{s['fit_seconds']:>8.2f}")
    if json_path:
        click.echo(f"results written to {json_path}")
