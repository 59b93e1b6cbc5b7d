"""``amk simulate``: rank tuning strategies on Kernel Tuner caches, holding out one device at a time."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from amk.cli.context import AppContext, pass_app


def _fmt(value: float | None) -> str:
    if value is None:
        return "never"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


@click.command("simulate")
@click.option("--caches", "caches", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A folder of Kernel Tuner cache files of one kernel on several devices (or one sub-folder per kernel).")
@click.option("--budget", default=500, show_default=True, help="Evaluations each strategy may spend per device.")
@click.option("--seeds", default=5, show_default=True, help="Seeds per randomised strategy (the median is reported).")
@click.option("--strategy", "strategies", multiple=True, metavar="NAME",
              help="Strategies to run (repeatable): amk, random, tpe, pooled, or kt:NAME for Kernel Tuner's "
                   "strategy NAME (e.g. kt:diff_evo). Default: amk's four (tpe when optuna is installed) and, "
                   "when kernel_tuner is installed, Kernel Tuner's diff_evo, genetic_algorithm, hybrid_vndx, "
                   "adaptive_tabu_greywolf, simulated_annealing, bayes_opt and random_sample.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the rows as a JSON list to this file.")
@click.option("--device", "device_pairs", multiple=True, metavar="FILE=NAME",
              help="The device of a cache file (its name, with or without .json/.json.gz) whose device_name is "
                   "empty, or to override it (repeatable). Without it such a file is named by its file name.")
@pass_app
def simulate_command(app: AppContext, caches: Path, budget: int, seeds: int, strategies: tuple[str, ...],
                     json_path: Path | None, device_pairs: tuple[str, ...]) -> None:
    """For each device in turn: the other devices' caches are the corpus, the held-out one is replayed,
    and each strategy's evaluations until a config within 5% (and 1%) of that device's optimum are
    counted, beside the autotuning methodology's performance score over the budget (0 = random search,
    1 = the optimum). Latencies are replayed from the caches, not measured by this run.
    """
    import attrs

    from amk.core.errors import AmkError
    from amk.core.featurizer import Featurizer
    from amk.core.ranker import Ranker
    from amk.simulate import simulate, summarize
    from amk.tuning.settings import tune_settings

    if budget <= 0 or seeds <= 0:
        raise AmkError(f"--budget {budget} and --seeds {seeds} must both be at least 1.")
    devices = {}
    for pair in device_pairs:
        name, eq, device = pair.partition("=")
        if not eq or not name.strip() or not device.strip():
            raise AmkError(f"--device {pair!r} must be FILE=NAME, e.g. --device MI250X.json=mi250x.")
        devices[name.strip()] = device.strip()
    config = app.config
    click.echo(f"{'KERNEL':<24}{'DEVICE':<14}{'STRATEGY':<28}{'EVALS TO 5%':>12}{'EVALS TO 1%':>12}{'SCORE':>7}  NOTE")

    def show(row) -> None:
        score = "" if row.score is None or math.isnan(row.score) else f"{row.score:.2f}"
        click.echo(f"{row.kernel:<24}{row.device:<14}{row.strategy:<28}{_fmt(row.evals_to_5pct):>12}"
                   f"{_fmt(row.evals_to_1pct):>12}{score:>7}  {row.note}")

    rows = simulate(caches, budget=budget, seeds=seeds, strategies=list(strategies) or None,
                    settings=tune_settings(config), featurizer=config.create(Featurizer),
                    ranker=config.create(Ranker), on_row=show, devices=devices)
    summary = summarize(rows)
    click.echo(f"amk needed fewer evaluations to 5% than every baseline on {summary['amk_fewer_than_every_baseline']} "
               f"of {summary['targets']} targets (no more than every baseline on "
               f"{summary['amk_no_more_than_every_baseline']}); median {_fmt(summary['amk_median_evals_to_5pct'])}. "
               f"Budget {budget}, {seeds} seeds; replayed latencies, not measured here.")
    for baseline, counts in summary["amk_against_each_baseline"].items():
        click.echo(f"  against {baseline}: fewer on {counts['fewer']}, as many on {counts['equal']}, "
                   f"more on {counts['more']}")
    if json_path:
        json_path.write_text(json.dumps([attrs.asdict(r) for r in rows], indent=1))
        click.echo(f"rows written to {json_path}")
