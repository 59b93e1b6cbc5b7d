"""Start-up of the commands that load the config, beside ``amk --help``, in the same run.

    nice python bench/startup.py --repeats 15
    git archive <commit> | tar -x -C /tmp/amk_old && nice python bench/startup.py --root /tmp/amk_old   # before

Each command runs in a fresh process (``python -m amk ...``) in a temporary working directory with no
config file, ``$AMK_CACHE_DIR`` pointing into it, and an empty jsonl store for ``amk corpus stats``; its
output goes to /dev/null, or, for the row that says so, to a pseudo-terminal (tables are then drawn by rich).
The commands take turns (help, plugins, stats, help, ...) so a change in the machine's load reaches
them alike. Bytecode is written (a first untimed round compiles it), as it is in a user's install.

Printed per command: the best and the median wall time and CPU time (user + system of the child), and
their ratio to ``amk --help``'s. The bar (issue 16): ``amk plugins`` and ``amk corpus stats`` within 2x
of ``amk --help``. The best of N is the figure least disturbed by other work on the machine.
"""

from __future__ import annotations

import argparse
import os
import pty
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMANDS: dict[str, list[str]] = {
    "amk --help": ["--help"],
    "amk plugins": ["plugins"],
    "amk plugins, on a terminal": ["plugins"],  # the table drawn by rich (imported only then)
    "amk corpus stats (empty store)": ["--store", "jsonl:empty.jsonl", "corpus", "stats"],
    "amk config show": ["config", "show"],
}
ON_A_TERMINAL = {"amk plugins, on a terminal"}
BASELINE = "amk --help"


def run_once(args: list[str], cwd: Path, env: dict[str, str], terminal: bool = False) -> tuple[float, float]:
    """(wall s, CPU s) of one ``python -m amk ARGS`` in a fresh process; stdout a pseudo-terminal (read and
    dropped) when ``terminal``, else /dev/null."""
    leader = follower = None
    if terminal:
        leader, follower = pty.openpty()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "amk", *args], cwd=cwd, env=env, stderr=subprocess.PIPE,
                            stdout=follower if terminal else subprocess.DEVNULL, text=True)
    if terminal:
        os.close(follower)
        drain = threading.Thread(target=_drain, args=(leader,), daemon=True)
        drain.start()
    stderr = proc.stderr.read()
    proc.wait()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if terminal:
        drain.join()
        os.close(leader)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, None, stderr)
    if done.returncode:
        raise SystemExit(f"amk {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _drain(fd: int) -> None:
    """Read a pseudo-terminal until the child closes it (so the child never blocks on a full buffer)."""
    while True:
        try:
            if not os.read(fd, 65536):
                return
        except OSError:
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed runs of each command")
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="the checkout whose amk runs (default: this one; e.g. an older commit's, to compare)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="amk-startup-") as tmp:
        cwd = Path(tmp)
        (cwd / "empty.jsonl").write_text("")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "AMK_CONFIG")}
        env["PYTHONPATH"] = os.pathsep.join([str(args.root.resolve()), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env["AMK_CACHE_DIR"] = str(cwd / "cache")
        for name, argv in COMMANDS.items():  # untimed: write the bytecode, warm the file cache
            run_once(argv, cwd, env, name in ON_A_TERMINAL)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in COMMANDS}
        for _ in range(args.repeats):
            for name, argv in COMMANDS.items():
                times[name].append(run_once(argv, cwd, env, name in ON_A_TERMINAL))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.root.resolve()}: {args.repeats} runs of each command, interleaved; load average {load:.1f} on "
          f"{os.cpu_count()} CPUs")
    base = times[BASELINE]
    base_wall, base_cpu = min(w for w, _ in base), min(c for _, c in base)
    print(f"{'command':34} {'wall best':>9} {'median':>8} {'ratio':>6}   {'CPU best':>8} {'median':>8} {'ratio':>6}")
    for name, runs in times.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(f"{name:34} {min(walls) * 1000:7.0f}ms {statistics.median(walls) * 1000:6.0f}ms "
              f"{min(walls) / base_wall:5.2f}x   {min(cpus) * 1000:6.0f}ms {statistics.median(cpus) * 1000:6.0f}ms "
              f"{min(cpus) / base_cpu:5.2f}x")


if __name__ == "__main__":
    main()
