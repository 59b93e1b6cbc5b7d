"""``amk plugins``: every installed store, featurizer, ranker and backend, and who provides it."""

from __future__ import annotations

import json

import click


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins_command(as_json: bool) -> None:
    """List installed implementations, the plugins that provide them, and plugins that failed to load."""
    from amk.core.kinds import KINDS
    from amk.core.plugins import get_registry

    registry = get_registry()
    rows, provided_by = [], []
    for kind in KINDS:
        for name in registry.names(kind):
            # A name two plugins register is refused (Registry.get says so): show it refused, with every provider.
            providers = registry.duplicates.get((kind.name, name)) or [registry.get(kind, name)]
            impl = providers[0]
            missing = impl.missing_requirements
            rows.append({
                "kind": kind.name, "name": name, "plugin": impl.plugin, "distribution": impl.distribution,
                "version": impl.version,
                "providers": [p.distribution for p in providers],
                "usable": not missing and len(providers) == 1,
                "missing": sorted(missing),
                "install": impl.install_hint if missing else None,
                "refused": ("registered by more than one plugin; uninstall all but one of them"
                            if len(providers) > 1 else None),
            })
            provided_by.append(", ".join(f"{p.distribution} {p.version}" for p in providers))
    plugins = [{"name": p.name, "distribution": p.distribution, "version": p.version, "hooks": list(p.hooks)}
               for p in registry.plugins]
    problems = [{"plugin": p.plugin, "distribution": p.distribution, "message": p.message}
                for p in registry.problems]
    if as_json:
        click.echo(json.dumps({"implementations": rows, "plugins": plugins, "problems": problems}, indent=2))
        return
    from amk.cli.output import table

    table(("KIND", "NAME", "PROVIDED BY", "STATUS"),
          [(row["kind"], row["name"], by, _status(row)) for row, by in zip(rows, provided_by)])
    click.echo("")
    click.echo("Plugins and the hooks they implement:")
    for p in plugins:
        click.echo(f"  {p['name']} ({p['distribution']} {p['version']}): {', '.join(p['hooks']) or 'no hooks'}")
    for p in problems:
        click.echo(f"  problem: {p['plugin']} ({p['distribution']}): {p['message']}", err=True)


def _status(row: dict) -> str:
    if row["refused"]:
        return f"refused: {row['refused']}"
    return "ok" if row["usable"] else f"needs {', '.join(row['missing'])}: {row['install']}"
