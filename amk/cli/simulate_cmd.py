"""``amk simulate``: rank tuning strategies on Kernel Tuner caches, holding out one device at a time."""

from __future__ import annotations

import json
from pathlib import Path

import click

from amk.cli.context import AppContext, pass_app
from amk.core.display import shown


def _fmt(value: float | None) -> str:
    if value is None:
        return "never"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


@click.command("simulate")
@click.option("--caches", "caches", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A folder of Kernel Tuner cache files of one kernel on several devices (or one sub-folder per kernel).")
@click.option("--budget", type=click.IntRange(min=1), default=500, show_default=True, help="Evaluations each strategy may spend per device.")
@click.option("--seeds", type=click.IntRange(min=1), default=5, show_default=True, help="Seeds per randomised strategy (the median is reported).")
@click.option("--strategy", "strategies", multiple=True, type=click.Choice(["amk", "random", "tpe", "pooled"]),
              help="Strategies to run (repeatable; default: all, tpe when optuna is installed).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the rows as a JSON list to this file.")
@pass_app
def simulate_command(app: AppContext, caches: Path, budget: int, seeds: int, strategies: tuple[str, ...],
                     json_path: Path | None) -> None:
    """For each device in turn: the other devices' caches are the corpus, the held-out one is replayed,
    and each strategy's evaluations until a config within 5% (and 1%) of that device's optimum are
    counted. Latencies are replayed from the caches, not measured by this run.
    """
    import attrs

    from amk.core.errors import AmkError
    from amk.core.featurizer import Featurizer
    from amk.core.ranker import Ranker
    from amk.simulate import STRATEGIES, simulate, summarize
    from amk.tuning.settings import tune_settings

    if budget <= 0 or seeds <= 0:
        raise AmkError(f"--budget {budget} and --seeds {seeds} must both be at least 1.")
    config = app.config
    click.echo(f"{'KERNEL':<24}{'DEVICE':<14}{'STRATEGY':<10}{'EVALS TO 5%':>12}{'EVALS TO 1%':>12}  NOTE")

    def show(row) -> None:
        click.echo(f"{shown(row.kernel):<24}{shown(row.device):<14}{row.strategy:<10}{_fmt(row.evals_to_5pct):>12}"
                   f"{_fmt(row.evals_to_1pct):>12}  {row.note}")

    rows = simulate(caches, budget=budget, seeds=seeds, strategies=list(strategies or STRATEGIES),
                    settings=tune_settings(config), featurizer=config.create(Featurizer),
                    ranker=config.create(Ranker), on_row=show)
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
