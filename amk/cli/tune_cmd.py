"""``amk tune``: tune one workload on one device with a backend, every point into the corpus."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from amk.cli.context import AppContext, pass_app
from amk.cli.problems import echo_unreadable
from amk.cli.target import WORKLOAD_HELP, parse_kinds, parse_workload, workload_options


def _backend_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    from amk.core.errors import ConfigError

    out: dict[str, Any] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"--backend-option {pair!r} must be KEY=VALUE, e.g. cache=A100.json.gz.")
        text = value.strip()
        try:
            out[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            out[key.strip()] = text
    return out


def create_backend(app: AppContext, name: str | None, option_pairs: tuple[str, ...]):
    """The backend ``name`` (the config's when None) with the config's options when it is the configured
    one, and ``--backend-option`` values on top."""
    from amk.core.backend import Backend
    from amk.core.config import structure_options

    config = app.config
    selection = config.selection("backend")
    name = name or selection.name
    impl = config.registry.get(Backend, name)
    raw = dict(selection.options) if name == selection.name else {}
    raw.update(_backend_options(option_pairs))
    options = structure_options(impl.cls.Options, raw, where="--backend-option / [backend]",
                                label=f"[backend] {name!r}")
    return config.registry.create(Backend, name, options)


LOCAL_DEVICE = "local"


def _local_device(backend):
    """The hardware a measuring backend runs on here (``--device local``)."""
    from amk.core.errors import BackendError

    available, why = backend.availability()
    if not available:
        raise BackendError(f"the {backend.name!r} backend cannot run here ({why}), so it has no local device.")
    device = backend.local_device()
    if device is None:
        raise BackendError(
            f"the {backend.name!r} backend measures no local hardware; name the device with --device (e.g. h100)."
        )
    return device


@click.command("tune", epilog=WORKLOAD_HELP)
@workload_options
@click.option("--backend", "backend_name", help="The backend that measures (default: the config's [backend]).")
@click.option("--backend-option", "backend_options", multiple=True, metavar="KEY=VALUE",
              help="An option of the backend (repeatable), e.g. --backend-option cache=A100.json.gz.")
@click.option("--budget", type=int, help="Configs to evaluate (default: [tune] budget).")
@click.option("--minutes", type=float, help="Wall-clock limit in minutes (default: [tune] minutes; 0 = none).")
@click.option("--resume", is_flag=True, help="Continue the interrupted (or finished) run of this target.")
@click.option("--seed", default=0, show_default=True, help="Random seed of a new run (a resumed run keeps its own).")
@click.option("--policy", type=click.Choice(["ensemble", "surrogate", "prior"]), help="Ordering policy (default: [tune] policy).")
@click.option("--isolation", type=click.Choice(["auto", "process", "thread"]),
              help="Where measurements run: a worker process that a crash or hang cannot take down, or this "
                   "process (default: [tune] isolation; auto: process for compiled backends).")
@click.option("--state", "state_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The state file (default: one per target under [tune] state_dir).")
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the JSON report and PNG plot go (default: [tune] state_dir).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_app
def tune_command(app: AppContext, workload_spec: str, shape: str | None, problem_size: str | None, device: str,
                 kinds: tuple[str, ...], backend_name: str | None, backend_options: tuple[str, ...],
                 budget: int | None, minutes: float | None, resume: bool, seed: int, policy: str | None,
                 isolation: str | None, state_path: Path | None, report_dir: Path | None, as_json: bool) -> None:
    """Tune a workload on a device: warm start from the corpus, then candidates ordered by the prior and
    a surrogate retrained as results arrive; every measured point, failures too, goes into the store.

    With a backend that measures this machine (cpu, cuda), --device local names the hardware it runs on.

    Stops after --budget evaluations or --minutes, whichever comes first (--minutes alone: no
    limit on evaluations). A killed run continues
    with --resume (same target, same state file). Writes a JSON report and a PNG of the best-so-far
    latency (the PNG needs amk[plot]).
    """
    import attrs

    from amk.core.devices import resolve_device
    from amk.core.featurizer import Featurizer
    from amk.core.ranker import Ranker
    from amk.tuning.loop import tune, without_run
    from amk.tuning.progress import ProgressBar
    from amk.tuning.report import write_report
    from amk.tuning.settings import default_learning_kinds, tune_settings
    from amk.tuning.state import TuneState
    from amk.tuning.target import TuneTarget, default_state_path, run_stem, target_id

    config = app.config
    settings = tune_settings(config)
    if minutes and budget is None:
        budget = 0  # --minutes alone: as many evaluations as fit in the time
    if policy:
        settings = attrs.evolve(settings, policy=policy)
    if isolation:
        settings = attrs.evolve(settings, isolation=isolation)
    workload = parse_workload(workload_spec, shape, problem_size)
    backend = create_backend(app, backend_name, backend_options)
    dev = _local_device(backend) if device == LOCAL_DEVICE else resolve_device(device)
    state_path = state_path or default_state_path(settings, workload, dev, backend.name)
    if state_path.exists() and not resume:
        click.echo(f"amk: a new run replaces the state of the previous one at {state_path} "
                   "(pass --resume to continue that run instead)", err=True)
    with app.open_store() as store:
        corpus = store.columns()
        echo_unreadable(store.problems(), store.describe())
        if resume:
            previous = TuneState.load(state_path, target_id(workload, dev, backend.name))
            corpus = without_run(corpus, previous.run_id)
        target = TuneTarget.prepare(workload, dev, backend, corpus, settings,
                                    featurizer=config.create(Featurizer), ranker=config.create(Ranker),
                                    kinds=parse_kinds(kinds) if kinds else default_learning_kinds(backend))
        total = budget if budget is not None else settings.budget
        progress = ProgressBar(total or len(target.candidates), label=f"tune {workload.name} on {dev.name}")
        result = tune(target, settings, seed=seed, budget=budget, minutes=minutes, store=store,
                      state_path=state_path, resume=resume, progress=progress, registry=config.registry)
        where = store.describe()
    report = write_report(result, settings, report_dir or Path(settings.state_dir),
                          run_stem(workload, dev, backend.name), where)
    if as_json:
        click.echo(json.dumps(report, indent=1, default=str))
        return
    state = result.state
    click.echo(f"{workload.name} on {dev.name} with {backend.name}: {len(state.trials)} evaluations "
               f"({state.measurements} measurements), {state.stop_reason}")
    click.echo(f"warm start: {', '.join(state.warm_sources) or 'none (cold start)'}")
    if target.skipped_seeds:
        click.echo(f"warm start: {target.skipped_seeds} corpus seed(s) left out: {target.skipped_text}")
    if target.defaulted_seeds:
        click.echo(f"warm start: {target.defaulted_seeds} seed(s) lacked knobs of this search space and took their "
                   "defaults")
    if result.adopted:
        click.echo(f"resume: {result.adopted} evaluation(s) taken back from the store (measured after the last "
                   "saved state)")
    click.echo(f"prior: {target.prior_description}")
    best = report["best"]
    if best is None:
        click.echo("no config passed; nothing to keep")
    else:
        floor = (f", {report['fraction_of_floor']:.1%} of the speed of light: floor {report['floor_us']:.3f} us"
                 if report["fraction_of_floor"] else "")
        click.echo(f"best: {best['latency_us']:.3f} us ({target.backend.measurement_kind.value}{floor}) "
                   f"at evaluation {best['evaluation']}: {json.dumps(best['config'])}")
    click.echo(f"verdicts: {', '.join(f'{k} {v}' for k, v in report['verdicts'].items())}")
    click.echo(f"records appended to {where}; report {report['report']}; state {state_path}")
    if report["plot"]:
        click.echo(f"plot {report['plot']}")
    else:
        click.echo(f"note: {report['plot_note']}", err=True)
