"""The ``amk`` command. Exit codes: 0 ok, 1 failure (bad input, a failed check), 2 usage error, 130
interrupted, 141 the reader of stdout went away (quietly).

Each command group lives in its own module and is added to :data:`main` here; commands import what
they need when they run, so ``amk --help`` stays fast.
"""

from __future__ import annotations

import sys

import click

from amk import __version__
from amk.cli.config_cmd import config_group
from amk.cli.context import AmkGroup, AppContext
from amk.cli.corpus_cmd import corpus_group
from amk.cli.doctor_cmd import doctor_command
from amk.cli.params import STORE_URL
from amk.cli.plugins_cmd import plugins_command
from amk.cli.prior_cmd import evaluate_command, rank_command, warm_start_command
from amk.cli.runs_cmd import runs_command
from amk.cli.simulate_cmd import simulate_command
from amk.cli.tune_cmd import tune_command


@click.group(cls=AmkGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="amk")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar=None,
              help="Config file to use (default: $AMK_CONFIG, ./amk.toml, or [tool.amk] in ./pyproject.toml).")
@click.option("--store", "store_url", metavar="URL", type=STORE_URL,
              help="Store to use instead of the config's: jsonl:PATH, sqlite:PATH or postgresql://...")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or progress lines (results and errors still print).")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, store_url: str | None, quiet: bool) -> None:
    """amk: a corpus of every measured kernel-tuning point, turned into warm starts, a learned
    ranking prior and a tuning loop.

    --config, --store and -q may also follow the command: amk corpus stats --store sqlite:corpus.sqlite.
    Exit codes: 0 ok, 1 failure (bad input, a failed check), 2 usage error, 130 interrupted (Ctrl-C).
    """
    ctx.obj = AppContext(config_path=config_path, store_url=store_url, quiet=quiet)


main.add_command(plugins_command)
main.add_command(config_group)
main.add_command(corpus_group)
main.add_command(warm_start_command)
main.add_command(rank_command)
main.add_command(evaluate_command)
main.add_command(tune_command)
main.add_command(runs_command)
main.add_command(simulate_command)
main.add_command(doctor_command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
