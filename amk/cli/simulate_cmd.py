"""``amk simulate``: rank tuning strategies on Kernel Tuner caches, holding out one device at a time."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from amk.cli.context import AppContext, pass_app
from amk.cli.params import OUTPUT_FILE


def _fmt(value: float | None, budget: int | None = None) -> str:
    """An evaluation count; "never" when not reached (an expectation beyond the budget: "never (N)")."""
    if value is None:
        return "never"
    text = f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
    return f"never ({text} expected)" if budget is not None and value > budget else text


@click.command("simulate")
@click.option("--caches", "caches", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A folder of Kernel Tuner cache files of one kernel on several devices (or one sub-folder per kernel).")
@click.option("--budget", type=click.IntRange(min=1), default=500, show_default=True,
              help="Evaluations each strategy may spend per device.")
@click.option("--seeds", type=click.IntRange(min=1), default=5, show_default=True,
              help="Seeds per randomised strategy (the median is reported).")
@click.option("--strategy", "strategies", multiple=True, metavar="NAME",
              help="Strategies to run (repeatable): amk, random, tpe, pooled, or kt:NAME for Kernel Tuner's "
                   "strategy NAME (e.g. kt:diff_evo). Default: amk's four (tpe when optuna is installed) and, "
                   "when kernel_tuner is installed, Kernel Tuner's diff_evo, genetic_algorithm, hybrid_vndx, "
                   "adaptive_tabu_greywolf, simulated_annealing, bayes_opt and random_sample.")
@click.option("--json", "json_path", type=OUTPUT_FILE,
              help="Also write the rows (with each strategy's best-so-far curve) as a JSON list to this file.")
@click.option("--plot", "plot_path", type=OUTPUT_FILE,
              help="Where the PNG of best-so-far curves goes (default: .amk/simulate/FOLDER.png).")
@click.option("--device", "device_pairs", multiple=True, metavar="FILE=NAME",
              help="The device of a cache file (its name, with or without .json/.json.gz) whose device_name is "
                   "empty, or to override it (repeatable). Without it such a file is named by its file name.")
@pass_app
def simulate_command(app: AppContext, caches: Path, budget: int, seeds: int, strategies: tuple[str, ...],
                     json_path: Path | None, plot_path: Path | None, device_pairs: tuple[str, ...]) -> None:
    """For each device in turn: the other devices' caches are the corpus, the held-out one is replayed,
    and each strategy's evaluations until a config within 5% (and 1%) of that device's optimum are
    counted, beside the autotuning methodology's performance score over the budget (0 = random search,
    1 = the optimum); a PNG shows each strategy's best-so-far curve per held-out device. Latencies are
    replayed from the caches, not measured by this run.
    """
    import attrs

    from amk.cli.output import note, plural, table
    from amk.core.errors import ValidationError
    from amk.core.featurizer import Featurizer
    from amk.core.ranker import Ranker
    from amk.simulate import runnable_strategies, simulate, summarize, write_curves_plot
    from amk.tuning.settings import tune_settings

    devices = {}
    for pair in device_pairs:
        name, eq, device = pair.partition("=")
        if not eq or not name.strip() or not device.strip():
            raise click.BadParameter(f"{pair!r} must be FILE=NAME, e.g. --device MI250X.json=mi250x.",
                                     param_hint="'--device'")
        devices[name.strip()] = device.strip()
    _refuse_devices_of_no_cache(devices, caches)
    try:
        chosen = runnable_strategies(list(strategies) or None)
    except ValidationError as exc:
        raise click.BadParameter(str(exc), param_hint="'--strategy'") from None
    config = app.config
    with app.progress(f"simulate {caches.name}", unit="strategies") as progress:
        rows = simulate(caches, budget=budget, seeds=seeds, strategies=chosen,
                        settings=tune_settings(config), featurizer=config.create(Featurizer),
                        ranker=config.create(Ranker), devices=devices, progress=progress.report)
    table(("KERNEL", "DEVICE", "STRATEGY", "EVALS TO 5%", "EVALS TO 1%", "SCORE", "NOTE"),
          [(r.kernel, r.device, r.strategy, _fmt(r.evals_to_5pct, budget), _fmt(r.evals_to_1pct, budget),
            "" if r.score is None or math.isnan(r.score) else f"{r.score:.2f}", r.note)
           for r in rows], right=("EVALS TO 5%", "EVALS TO 1%", "SCORE"))
    summary = summarize(rows)
    if "amk" not in chosen:
        click.echo(f"amk was not among the strategies (--strategy amk adds it): no comparison with it. Budget {budget}, "
                   f"{plural(seeds, 'seed')}; replayed latencies, not measured here.")
    else:
        _echo_summary(summary, budget, seeds)
    plot_path = plot_path or Path(".amk") / "simulate" / f"{caches.resolve().name}.png"
    why_not = write_curves_plot(rows, plot_path)
    if why_not:
        note(why_not)
    else:
        click.echo(f"best-so-far curves per strategy: {plot_path}")
    if json_path:
        json_path.write_text(json.dumps([attrs.asdict(r) for r in rows], indent=1))
        click.echo(f"rows written to {json_path}")


def _echo_summary(summary: dict, budget: int, seeds: int) -> None:
    """How amk did against the baselines, over every held-out target."""
    from amk.cli.output import plural

    click.echo(f"amk needed fewer evaluations to 5% than every baseline on {summary['amk_fewer_than_every_baseline']} "
               f"of {plural(summary['targets'], 'target')} (no more than every baseline on "
               f"{summary['amk_no_more_than_every_baseline']}); median {_fmt(summary['amk_median_evals_to_5pct'])}. "
               f"Budget {budget}, {plural(seeds, 'seed')}; replayed latencies, not measured here.")
    for baseline, counts in summary["amk_against_each_baseline"].items():
        never = f", neither within the budget on {counts['never']}" if counts["never"] else ""
        click.echo(f"  against {baseline}: fewer on {counts['fewer']}, as many on {counts['equal']}, "
                   f"more on {counts['more']}{never}")


def _refuse_devices_of_no_cache(devices: dict[str, str], caches: Path) -> None:
    """A usage error for a --device FILE=NAME whose FILE is none of the caches (a typo would otherwise be
    ignored and the cache simulated under another device name)."""
    from amk.simulate import find_kernel_dirs

    if not devices:
        return
    paths = [p for group in find_kernel_dirs(caches).values() for p in group]
    names = {p.name for p in paths} | {p.name.removesuffix(".json.gz") for p in paths} | \
        {p.name.removesuffix(".json") for p in paths}  # a file's name with or without .json/.json.gz
    unknown = [name for name in devices if name not in names]
    if unknown:
        files = ", ".join(sorted(p.name for p in paths)[:20])
        raise click.BadParameter(f"{', '.join(map(repr, unknown))} is no cache file in {str(caches)!r}; the caches "
                                 f"are {files}.", param_hint="'--device'")
