"""What every command shares: the effective config, opened lazily, and amk's error handling."""

from __future__ import annotations

import warnings
from typing import Any

import click

from amk.io.display import printable, shown
from amk.core.errors import AmkError, LeftOutWarning


def _show_left_out(message, category, filename, lineno, file=None, line=None) -> None:
    """What amk left out (LeftOutWarning) as one ``amk: note:`` line; other warnings as Python shows them."""
    if issubclass(category, LeftOutWarning):
        click.echo(f"amk: note: {shown(message)}", err=True)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


_python_showwarning = warnings.showwarning


class AmkGroup(click.Group):
    """A click group that prints an AmkError as one line on stderr and exits 1 (no traceback), and what a
    command left out (LeftOutWarning) as one note line each."""

    def invoke(self, ctx: click.Context) -> Any:
        with warnings.catch_warnings():
            warnings.showwarning = _show_left_out
            warnings.simplefilter("always", LeftOutWarning)
            try:
                return super().invoke(ctx)
            except AmkError as exc:
                click.echo(f"amk: error: {shown(exc)}", err=True)
                ctx.exit(1)
            except OSError as exc:  # a file system error no command turned into an AmkError: still one line
                where = f" ({printable(str(exc.filename))})" if exc.filename else ""
                click.echo(f"amk: error: {shown(exc.strerror or exc)}{where}; check the path, its permissions and "
                           "free disk space.", err=True)
                ctx.exit(1)


class AppContext:
    """The config (loaded on first use, so ``--help`` reads no file) and the store it selects."""

    def __init__(self, config_path: str | None = None, store_url: str | None = None) -> None:
        self.config_path = config_path
        self.store_url = store_url
        self._config = None

    @property
    def config(self):
        if self._config is None:
            from amk.core.config import load_config

            config = load_config(self.config_path)
            if self.store_url:
                config = config.with_store_url(self.store_url, origin="--store")
            self._config = config
        return self._config

    def open_store(self):
        """The selected store, opened."""
        from amk.core.store import Store
        return self.config.create(Store)


pass_app = click.make_pass_decorator(AppContext)
