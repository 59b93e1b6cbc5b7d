"""``amk tune``: tune one workload on one device with a backend, every point into the corpus."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from amk.cli.context import AppContext, pass_app
from amk.cli.output import note
from amk.cli.params import FINITE_NON_NEGATIVE
from amk.cli.problems import echo_unreadable
from amk.cli.target import WORKLOAD_HELP, note_left_out_kinds, parse_kinds, parse_workload, workload_options
from amk.io.display import shown


def _backend_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    from amk.core.errors import ValidationError
    from amk.core.inputs import parse_json

    out: dict[str, Any] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise click.BadParameter(f"{pair!r} must be KEY=VALUE, e.g. cache=A100.json.gz.",
                                     param_hint="'--backend-option'")
        text = value.strip()
        try:  # a JSON value within amk's input limits, else the text itself
            out[key.strip()] = parse_json(text)
        except ValidationError:
            out[key.strip()] = text
    return out


def create_backend(app: AppContext, name: str | None, option_pairs: tuple[str, ...]):
    """The backend ``name`` (the config's when None) with the config's options when it is the configured
    one, and ``--backend-option`` values on top. A name or option given on the command line that does not
    exist is a usage error (exit 2)."""
    from amk.core.backend import Backend
    from amk.core.config import structure_options
    from amk.core.errors import ConfigError, UnknownNameError

    config = app.config
    selection = config.selection("backend")
    raw_options = _backend_options(option_pairs)
    try:
        impl = config.registry.get(Backend, name or selection.name)
    except UnknownNameError as exc:
        if name is None:
            raise
        raise click.BadParameter(str(exc), param_hint="'--backend'") from None
    name = impl.name
    raw = dict(selection.options) if name == selection.name else {}
    raw.update(raw_options)
    try:
        options = structure_options(impl.cls.Options, raw, where="--backend-option / [backend]",
                                    label=f"[backend] {name!r}")
    except ConfigError as exc:
        if not raw_options:
            raise
        raise click.BadParameter(str(exc), param_hint="'--backend-option'") from None
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
@click.option("--budget", type=click.IntRange(min=1), help="Configs to evaluate (default: [tune] budget).")
@click.option("--minutes", type=FINITE_NON_NEGATIVE,
              help="Wall-clock limit in minutes (default: [tune] minutes; 0 = none).")
@click.option("--resume", is_flag=True, help="Continue the interrupted (or finished) run of this target.")
@click.option("--seed", default=0, show_default=True, help="Random seed of a new run (a resumed run keeps its own).")
@click.option("--policy", type=click.Choice(["ensemble", "surrogate", "prior"]), help="Ordering policy (default: [tune] policy).")
@click.option("--isolation", type=click.Choice(["auto", "process", "thread"]),
              help="Where measurements run: a worker process that a crash or hang cannot take down, or this "
                   "process (default: [tune] isolation; auto: process for compiled backends).")
@click.option("--state", "state_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The state file (default: one per target under [tune] state_dir).")
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the JSON reports and PNG plots go, one folder per target (default: [tune] state_dir).")
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
    limit on evaluations). A deterministic backend (roofline, replay) never evaluates a config the
    corpus already holds from it: the run starts from those results. Ctrl-C stops the run, keeps what
    was measured and prints the command that resumes it (exit 130); a killed run continues with
    --resume too. Each run writes a JSON report and a PNG of the best-so-far latency (needs amk[plot]),
    named by its run id; `amk runs` lists them.
    """
    import attrs

    from amk.core.devices import resolve_device
    from amk.core.errors import Interrupted
    from amk.core.featurizer import Featurizer
    from amk.core.ranker import Ranker
    from amk.core.records import MeasurementKind
    from amk.tuning.loop import takes_known_results, tune, without_run
    from amk.tuning.report import write_report
    from amk.tuning.settings import default_learning_kinds, tune_settings
    from amk.tuning.state import TuneState, run_lock
    from amk.tuning.target import TuneTarget, default_state_path, run_stem, target_id

    config = app.config
    settings = tune_settings(config)
    if minutes and budget is None:
        budget = 0  # --minutes alone: as many evaluations as fit in the time
    if policy:
        settings = attrs.evolve(settings, policy=policy)
    if isolation:
        settings = attrs.evolve(settings, isolation=isolation)
    workload = parse_workload(workload_spec, shape, problem_size, sized_step=True)
    backend = create_backend(app, backend_name, backend_options)
    dev = _local_device(backend) if device == LOCAL_DEVICE else resolve_device(device)
    state_path = state_path or default_state_path(settings, workload, dev, backend.name)
    click.get_current_context().with_resource(run_lock(state_path))  # one run of a target at a time, until exit
    replaces = state_path.exists() and not resume  # said once the run starts, not for a run that never does
    learn = parse_kinds(kinds) if kinds else default_learning_kinds(backend)
    stem = run_stem(workload, dev, backend.name)
    with app.open_store() as store:
        corpus = store.columns()
        echo_unreadable(store.problems(), store.describe())
        if resume:
            previous = TuneState.load(state_path, target_id(workload, dev, backend.name))
            corpus = without_run(corpus, previous.run_id)
        note_left_out_kinds(corpus, workload.kind, learn, chosen=bool(kinds),
                            default=f"the {backend.name} backend's default: its own kind and measured")
        target = TuneTarget.prepare(workload, dev, backend, corpus, settings,
                                    featurizer=config.create(Featurizer), ranker=config.create(Ranker),
                                    kinds=learn)
        total = budget if budget is not None else settings.budget
        progress = app.progress(f"tune {workload.name} on {dev.name}", total or len(target.candidates),
                                unit="evaluations")
        if replaces:
            note(f"a new run starts; the previous run's state at {state_path} is replaced (its report is kept; "
                 "pass --resume to continue that run instead)")
        try:
            result = tune(target, settings, seed=seed, budget=budget, minutes=minutes, store=store,
                          state_path=state_path, resume=resume, progress=progress, registry=config.registry)
        except Interrupted as stop:
            _report_interrupted(stop.result, store.describe(), state_path, settings, report_dir, stem)
            raise
        where = store.describe()
    report = write_report(result, settings, report_dir or Path(settings.state_dir), stem, where)
    if as_json:
        click.echo(json.dumps(report, indent=1, default=str))
        return
    state = result.state
    click.echo(shown(f"{workload.name} on {dev.name} with {backend.name}: {len(state.trials)} evaluations "
                     f"({state.measurements} measurements), {state.stop_reason}"))
    if takes_known_results(backend, settings) and state.known:
        why = ("the backend is deterministic" if backend.deterministic else "[tune] remeasure = false")
        click.echo(f"corpus: {state.known} config(s) already evaluated by {backend.name} {backend.version} for this "
                   f"workload and device were taken, not evaluated again ({why})")
    elif backend.measurement_kind is MeasurementKind.MEASURED and (held := _measured_here(corpus, workload, dev)):
        note(f"the corpus held {held} measured record(s) of this workload on this device; a config among them is "
             "measured again when picked ([tune] remeasure = true: a measurement from another session is not "
             "comparable with this session's)")
    click.echo(shown(f"warm start: {', '.join(state.warm_sources) or target.unseeded or 'none (cold start)'}"))
    if target.skipped_seeds:
        click.echo(f"warm start: {target.skipped_seeds} corpus seed(s) left out: {target.skipped_text}")
    if target.defaulted_seeds:
        click.echo(f"warm start: {target.defaulted_seeds} seed(s) lacked knobs of this search space and took their "
                   "defaults")
    if result.adopted:
        click.echo(f"resume: {result.adopted} evaluation(s) taken back from the store (measured after the last "
                   "saved state)")
    click.echo(f"prior: {target.prior_description}")
    _echo_best(report, target)
    click.echo(f"verdicts: {', '.join(f'{k} {v}' for k, v in report['verdicts'].items()) or 'none'}")
    click.echo(shown(f"records appended to {where}; report {report['report']}; state {state_path}"))
    if report["plot"]:
        click.echo(f"plot {report['plot']}")
    else:
        note(report["plot_note"])


def _measured_here(corpus, workload, dev) -> int:
    """How many measured records ``corpus`` holds of ``workload`` on ``dev`` (before this run)."""
    import numpy as np

    from amk.core.records import MeasurementKind

    workloads = [i for i, w in enumerate(corpus.workloads) if w.key == workload.key]
    devices = [i for i, d in enumerate(corpus.devices) if d.name == dev.name]
    rows = corpus.mask(kinds=(MeasurementKind.MEASURED,)) & np.isin(corpus.workload_index, workloads) & \
        np.isin(corpus.device_index, devices)
    return int(rows.sum())


def _echo_best(report: dict, target) -> None:
    best = report["best"]
    if best is None:
        click.echo("no config passed; nothing to keep")
        return
    floor = (f", {report['fraction_of_floor']:.1%} of the speed of light: floor {report['floor_us']:.3f} us"
             if report["fraction_of_floor"] else "")
    where = f"at evaluation {best['evaluation']}" if best["evaluation"] else f"taken from the corpus ({best['from']})"
    click.echo(f"best: {best['latency_us']:.3f} us ({target.backend.measurement_kind.value}{floor}) "
               f"{where}: {json.dumps(best['config'])}")


def _report_interrupted(result, where: str, state_path: Path, settings, report_dir: Path | None, stem: str) -> None:
    """After Ctrl-C: the best so far, what was recorded, and the exact command that resumes the run."""
    from amk.core.errors import FileWriteError
    from amk.tuning.report import write_report

    state = result.state
    click.echo("", err=True)
    click.echo(f"interrupted after {len(state.trials)} evaluation(s) of run {state.run_id}; "
               f"{len(result.records)} record(s) appended to {where} this session; state saved to {state_path}",
               err=True)
    if state.incumbent_us is not None:
        config = result.best_config()
        click.echo(f"best so far: {state.incumbent_us:.3f} us ({result.target.backend.measurement_kind.value}): "
                   f"{json.dumps(config)}", err=True)
    else:
        click.echo("best so far: none (no config passed yet)", err=True)
    try:
        report = write_report(result, settings, report_dir or Path(settings.state_dir), stem, where)
        click.echo(f"report {report['report']}", err=True)
    except (OSError, FileWriteError) as exc:  # the run is resumable whatever happens to its report (a full disk)
        click.echo(f"amk: note: the report could not be written ({exc})", err=True)
    args = [a for a in sys.argv[1:] if a != "--resume"]
    click.echo(f"resume with: {shlex.join(['amk', *args, '--resume'])}", err=True)
