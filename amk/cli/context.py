"""What every command shares: the effective config, opened lazily, and amk's error handling."""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

import click

from amk.core.errors import AmkError, LeftOutWarning
from amk.io.display import printable, shown


def _show_left_out(message, category, filename, lineno, file=None, line=None) -> None:
    """What amk left out (LeftOutWarning) as one ``amk: note:`` line; other warnings as Python shows them."""
    if issubclass(category, LeftOutWarning):
        click.echo(f"amk: note: {shown(message)}", err=True)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


_python_showwarning = warnings.showwarning


INTERRUPTED = 130  # exit status after Ctrl-C (128 + SIGINT), as shells report a process a SIGINT ended
BROKEN_PIPE = 141  # exit status when the reader of stdout went away (128 + SIGPIPE), as git and shells report it

# amk's own options, accepted before or after the command: ``amk --store URL corpus stats`` and
# ``amk corpus stats --store URL`` are the same.
GLOBAL_OPTIONS_WITH_VALUE = ("--config", "--store")
GLOBAL_FLAGS = ("-q", "--quiet")


def hoist_global_options(args: list[str]) -> list[str]:
    """``args`` with amk's global options (wherever they are, up to a ``--``) moved in front of the command."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i:]
            break
        name = arg.split("=", 1)[0]
        if arg in GLOBAL_FLAGS or (name in GLOBAL_OPTIONS_WITH_VALUE and "=" in arg):
            front.append(arg)
        elif arg in GLOBAL_OPTIONS_WITH_VALUE and i + 1 < len(args):
            front += [arg, args[i + 1]]
            i += 1
        else:
            rest.append(arg)
        i += 1
    return front + rest


class AmkGroup(click.Group):
    """A click group that takes amk's global options anywhere on the line, prints an AmkError as one line on
    stderr and exits 1 (no traceback), a usage error with exit 2, an interrupt with exit 130, and what a
    command left out (LeftOutWarning) as one note line each."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if ctx.parent is None:
            args = hoist_global_options(list(args))
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        with warnings.catch_warnings():
            warnings.showwarning = _show_left_out
            warnings.simplefilter("always", LeftOutWarning)
            try:
                return super().invoke(ctx)
            except AmkError as exc:
                click.echo(f"amk: error: {shown(exc)}", err=True)
                ctx.exit(1)
            except BrokenPipeError:  # the reader of stdout went away (amk ... | head): nothing to say, to no one
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's flush at exit raises nothing
                ctx.exit(BROKEN_PIPE)
            except OSError as exc:  # a file system error no command turned into an AmkError: still one line
                where = f" ({printable(str(exc.filename))})" if exc.filename else ""
                click.echo(f"amk: error: {shown(exc.strerror or exc)}{where}; check the path, its permissions and "
                           "free disk space.", err=True)
                ctx.exit(1)
            except KeyboardInterrupt:
                # A command that has more to say (amk tune: the best so far, how to resume) says it
                # before this; the shell's convention for a SIGINT is 128 + 2.
                click.echo("amk: interrupted", err=True)
                ctx.exit(INTERRUPTED)


class AppContext:
    """The config (loaded on first use, so ``--help`` reads no file) and the store it selects."""

    def __init__(self, config_path: str | None = None, store_url: str | None = None, quiet: bool = False) -> None:
        self.config_path = config_path
        self.store_url = store_url
        self.quiet = quiet
        self._config = None

    def progress(self, label: str, total: int | None = None, *, unit: str = "steps", start: int = 0):
        """A Progress on stderr for a long operation: a bar on a terminal, a line per step otherwise,
        nothing with ``-q``."""
        from amk.tuning.progress import Progress

        return Progress(label, total, unit=unit, mode="off" if self.quiet else "auto", start=start)

    @property
    def config(self):
        if self._config is None:
            from amk.core.config import load_config

            config = load_config(self.config_path)
            if self.store_url:
                config = config.with_store_url(self.store_url, origin="--store")
            self._config = config
        return self._config

    def open_store(self, *, reading: bool = False):
        """The selected store, opened. ``reading``: the command only reads it, so a store file that does
        not exist (a mistyped --store path reads as an empty store) is said in a note."""
        from amk.core.store import Store

        store = self.config.create(Store)
        if reading and store_file_missing(store):
            click.echo(f"amk: note: there is no store at {shown(store.describe())}: it reads as empty; check "
                       "--store or the [store] section of the config", err=True)
        return store


def store_file_missing(store) -> bool:
    """Whether ``store`` is kept in a file (its options have a ``path``) that does not exist yet."""
    path = getattr(store.options, "path", None)
    return isinstance(path, str) and not os.path.exists(path)


pass_app = click.make_pass_decorator(AppContext)
