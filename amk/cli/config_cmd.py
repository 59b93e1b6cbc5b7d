"""``amk config show``: the effective config and where each value came from."""

from __future__ import annotations

import json
import math
from typing import Any

import click

from amk.cli.context import AppContext, pass_app
from amk.io.display import redact, shown


@click.group("config")
def config_group() -> None:
    """Inspect amk's configuration."""


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@pass_app
def show(app: AppContext, as_json: bool) -> None:
    """Print the effective config: each kind's implementation and options, with their origins."""
    import attrs

    from amk.core.config import find_config_file
    from amk.core.kinds import KIND_NAMES
    from amk.tuning.settings import TuneSettings

    config = app.config
    config.validate()
    settings_classes = {"tune": TuneSettings}  # amk's own settings sections, each checked by its class
    _, why = find_config_file(app.config_path) if not app.config_path else (None, "--config")
    out = {"file": str(config.path) if config.path else None, "found_by": why, "sections": {}}
    for kind in KIND_NAMES:
        sel = config.selection(kind)
        options = attrs.asdict(config.options(kind))
        out["sections"][kind] = {
            "name": {"value": sel.name, "from": sel.origins.get("name")},
            "options": {k: {"value": v, "from": sel.origins.get(k, "option default")} for k, v in options.items()},
        }
    for section, settings_cls in settings_classes.items():  # every key, set or defaulted
        given = config.settings.get(section, {})
        values = attrs.asdict(config.settings_for(section, settings_cls))
        out["sections"][section] = {
            "options": {k: {"value": v, "from": str(config.source) if k in given else "embedded default"}
                        for k, v in values.items()},
        }
    if as_json:
        click.echo(redact(json.dumps(out, indent=2, default=str)))  # no password of a store URL is printed
        return
    click.echo(f"# config file: {shown(out['file'] or 'none')} ({why})")
    click.echo("# valid TOML: paste any section into amk.toml; each value's origin is in its comment")
    for kind, section in out["sections"].items():
        click.echo(f"[{kind}]")
        if "name" in section:
            _line("name", section["name"])
        for key, item in section["options"].items():
            _line(key, item)
        click.echo("")


def toml_value(value: Any) -> str:
    """``value`` as a TOML value (str, bool, int, float, list, dict); ValueError for None or another type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's string escapes are TOML basic-string escapes
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    if hasattr(value, "value"):  # an enum
        return toml_value(value.value)
    raise ValueError(f"{value!r} has no TOML form")


def _line(key: str, item: dict) -> None:
    if item["value"] is None:  # TOML has no null: an unset option stays a comment
        click.echo(f"# {key} is not set{'':<30} # {shown(item['from'])}")
        return
    setting = shown(f"{key} = {toml_value(item['value'])}")  # a store URL's password shows as ***
    click.echo(f"{setting:<48} # {shown(item['from'])}")
