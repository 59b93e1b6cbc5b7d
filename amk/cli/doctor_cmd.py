"""``amk doctor``: what is installed, which backends can run here and why the others cannot, and the
memory bandwidth measured on this machine (by each runnable backend that measures local hardware)."""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from importlib import metadata

import click

# Distributions amk's extras bring in, as (distribution, what amk uses it for).
OPTIONAL_PACKAGES: tuple[tuple[str, str], ...] = (
    ("torch", "cpu and cuda backends"),
    ("ninja", "building torch extensions"),
    ("scikit-learn", "gbr ranker, the tune loop's surrogate policy"),
    ("lightgbm", "lightgbm ranker"),
    ("psycopg", "postgres store"),
    ("optuna", "the TPE baseline of amk simulate"),
    ("matplotlib", "the best-so-far plot of amk tune"),
)


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _tool_version(tool: str, flag: str = "--version") -> dict[str, str | None]:
    path = shutil.which(tool)
    if path is None:
        return {"path": None, "version": None}
    try:
        out = subprocess.run([path, flag], capture_output=True, text=True, timeout=30, check=False).stdout.strip().splitlines()
    except (OSError, subprocess.TimeoutExpired):
        out = []
    # nvcc names its version on the line that says "release"; compilers and ninja on the first line.
    version = next((line for line in out if "release" in line), out[0] if out else None)
    return {"path": path, "version": version}


def _backend_report(registry, name: str, measure: bool) -> dict:
    from amk.core.backend import Backend
    impl = registry.get(Backend, name)
    row: dict = {"name": name, "plugin": impl.plugin, "can_run": False, "why": "", "device": None}
    missing = impl.missing_requirements
    if missing:
        row["why"] = f"needs {', '.join(sorted(missing))}: {impl.install_hint}"
        return row
    backend = registry.create(Backend, name)
    try:
        ok, why = backend.availability()
    except Exception as exc:  # noqa: BLE001  (a plugin's broken availability check must not hide the others)
        ok, why = False, f"its availability check raised {type(exc).__name__}: {exc}"
    row["can_run"], row["why"] = ok, why
    if ok and measure:
        from amk.core.errors import AmkError

        try:
            device = backend.local_device()
        except AmkError as exc:
            row["can_run"], row["why"] = False, str(exc)
            return row
        if device is not None:
            row["device"] = {"name": device.name, "arch": device.arch,
                             "mem_bandwidth_gbps": device.mem_bandwidth_gbps, "memory_gb": device.memory_gb}
        # A backend that measures its device's bandwidth (rather than trusting a spec sheet) says so.
        measured = getattr(backend, "measured_bandwidth_gbps", None)
        if callable(measured):
            row["measured_bandwidth_gbps"] = measured()
    return row


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--no-measure", is_flag=True,
              help="Do not build kernels or measure bandwidth (only what is installed and what can run).")
@click.option("--remeasure", is_flag=True, help="Forget the cached bandwidth measurements and measure again.")
@click.option("--require", "required", multiple=True, metavar="BACKEND",
              help="Exit 1 unless this backend can run here (repeatable; e.g. in CI: --require cpu).")
def doctor_command(as_json: bool, no_measure: bool, remeasure: bool, required: tuple[str, ...]) -> None:
    """Show what is installed, which backends can run here (and why the others cannot), and the memory
    bandwidth measured on this machine."""
    from amk import __version__
    from amk.backends.cache_dir import cache_dir, forget_measurements
    from amk.core.backend import Backend
    from amk.core.plugins import get_registry

    if remeasure:
        forget_measurements()
    registry = get_registry()
    report = {
        "amk": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cache_dir": str(cache_dir()),
        "packages": {dist: _version(dist) for dist, _use in OPTIONAL_PACKAGES},
        "tools": {"c++": _tool_version("c++"), "nvcc": _tool_version("nvcc"), "ninja": _tool_version("ninja")},
        "backends": [_backend_report(registry, name, measure=not no_measure) for name in registry.names(Backend)],
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        _print_report(report, no_measure)
    rows = {row["name"]: row for row in report["backends"]}
    for name in required:
        registry.get(Backend, name)  # an unknown name is an error that lists the backends
        if not rows[name]["can_run"]:
            from amk.core.errors import BackendError

            raise BackendError(f"the required backend {name!r} cannot run here: {rows[name]['why']}.")


def _print_report(report: dict, no_measure: bool) -> None:
    click.echo(f"amk {report['amk']} on Python {report['python']}, {report['platform']}")
    click.echo(f"cache: {report['cache_dir']}")
    click.echo("")
    click.echo("Packages:")
    for dist, use in OPTIONAL_PACKAGES:
        version = report["packages"][dist]
        click.echo(f"  {dist:<14}{version or 'not installed':<22}({use})")
    click.echo("Tools:")
    for tool, info in report["tools"].items():
        click.echo(f"  {tool:<14}{(info['version'] or info['path']) if info['path'] else 'not found'}")
    click.echo("")
    click.echo("Backends:")
    for row in report["backends"]:
        status = "can run" if row["can_run"] else "cannot run"
        click.echo(f"  {row['name']:<10}{status}: {row['why']}")
    measured = [row for row in report["backends"] if row.get("measured_bandwidth_gbps")]
    if measured:
        click.echo("")
        click.echo("Memory bandwidth (measured here, cached; --remeasure to redo):")
        for row in measured:
            device = row["device"] or {}
            spec = device.get("mem_bandwidth_gbps")
            spec_text = f" (device spec: {spec:.0f} GB/s)" if spec and abs(spec - row["measured_bandwidth_gbps"]) > 1e-6 else ""
            click.echo(f"  {device.get('name', '?')} ({row['name']} backend): "
                       f"{row['measured_bandwidth_gbps']:.1f} GB/s{spec_text}")
    elif no_measure:
        click.echo("\n(bandwidth not measured: --no-measure)")
