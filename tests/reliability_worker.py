"""The processes of the fault-injection tests and of bench/reliability.py: ``python reliability_worker.py JOB ARGS``.

Each job is what a user's process does (the real ``amk`` command, or the store API), started together with
others through a GO file so they race:

- ``import URL FILE GO``: ``amk --store URL corpus import FILE`` once GO exists;
- ``migrate URL GO``: ``amk --store URL corpus migrate`` once GO exists;
- ``append URL GO N OUT [OLD]``: append N records one at a time, writing each confirmed record's number to OUT
  after ``append`` returned (with OLD, a jsonl store also gets an original-schema line under the file's lock
  after each, as an older amk would append, so every migration has work to do);
- ``import-forever URL FILE``, ``migrate-forever URL``: the same in a loop, until killed;
- ``tune DIR new|resume BUDGET``: a measured tune run (a noisy toy backend, A/B re-measurements) of BUDGET
  evaluations, its state and a jsonl store in DIR; ``resume`` continues the run there;
- ``save-model DIR``: save a fitted LightGBM ranker to DIR over and over, until killed;
- ``load-model DIR``: load it; prints ``loaded``, or the ModelFileError (never a crash).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from store_helpers import make_record

# One record of the original system's format (schema 0): what `amk corpus migrate` rewrites.
ORIGINAL = {"model": "m-2048h-16L", "gpu": "NVIDIA H100 80GB HBM3", "correctness": "PASS", "latency_us": 12.5,
            "bound_us": 10.0, "schedule": {"tiling": {"gemv": {"N_tile": 64}}}, "notes": "kind=measured", "ts": 1.7e9}


def wait(go: Path) -> None:
    while not go.exists():
        time.sleep(0.002)


def amk(*args: str) -> int:
    from amk.cli import main

    try:
        main.main(list(args), prog_name="amk", standalone_mode=False)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def append(url: str, go: Path, n: int, out: Path, old: bool) -> None:
    import fcntl

    from amk.core.config import open_store

    with open_store(url) as store, out.open("a") as confirmed:
        store.count()
        wait(go)
        for i in range(n):
            time.sleep(0.002)  # an appender that keeps going while the migrations run
            store.append([make_record(i, writer=7)])
            confirmed.write(f"{i}\n")
            confirmed.flush()
            if old and url.startswith("jsonl:"):
                with open(url.split(":", 1)[1], "ab") as f:
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX)
                    f.write((json.dumps(ORIGINAL) + "\n").encode())


def tune_run(folder: Path, resume: bool, budget: int) -> None:
    from tune_helpers import ToyBackend, toy_workload

    from amk.core.columns import CorpusColumns
    from amk.core.devices import resolve_device
    from amk.stores.jsonl import JsonlStore
    from amk.tuning.loop import tune
    from amk.tuning.settings import TuneSettings
    from amk.tuning.target import TuneTarget

    backend = ToyBackend(ToyBackend.Options(n=40, sleep_s=0.01, noise=0.03, kind="measured"))
    settings = TuneSettings(policy="surrogate", exploration="epsilon", epsilon=0.3, ab_rounds=2, min_gain=0.0,
                            isolation="thread")
    target = TuneTarget.prepare(toy_workload(), resolve_device("h100"), backend, CorpusColumns.from_records([]),
                                settings)
    store = JsonlStore(JsonlStore.Options(path=str(folder / "corpus.jsonl")))
    tune(target, settings, seed=3, budget=budget, store=store, state_path=folder / "run.state.json", resume=resume)


def save_model_forever(folder: Path) -> None:
    import numpy as np

    from amk.rankers.lightgbm import LightGBMRanker

    rng = np.random.default_rng(0)
    X = rng.random((400, 6)).astype(np.float32)
    rankers = [LightGBMRanker(LightGBMRanker.Options(n_estimators=n, num_leaves=15, num_threads=1)).fit(
        X, X[:, 0] + 0.1 * rng.random(400)) for n in (20, 40)]
    print("ready", flush=True)
    i = 0
    while True:
        rankers[i % 2].save(folder)
        i += 1


def load_model(folder: Path) -> None:
    from amk.core.errors import AmkError
    from amk.rankers.lightgbm import LightGBMRanker

    try:
        ranker = LightGBMRanker.load(folder)
        import numpy as np

        ranker.predict(np.zeros((3, 6), dtype=np.float32))
        print("loaded")
    except AmkError as exc:
        print(f"refused: {exc}")


def main() -> None:
    job, args = sys.argv[1], sys.argv[2:]
    import amk.cli as _cli  # noqa: F401  (imported before the start signal, so the racers start together)

    if job == "import":
        wait(Path(args[2]))
        sys.exit(amk("--store", args[0], "corpus", "import", args[1]))
    if job == "migrate":
        wait(Path(args[1]))
        sys.exit(amk("--store", args[0], "corpus", "migrate"))
    if job == "append":
        append(args[0], Path(args[1]), int(args[2]), Path(args[3]), len(args) > 4)
    elif job == "import-forever":
        while True:
            amk("--store", args[0], "corpus", "import", "--allow-duplicates", args[1])
    elif job == "migrate-forever":
        while True:
            amk("--store", args[0], "corpus", "migrate")
    elif job == "tune":
        tune_run(Path(args[0]), args[1] == "resume", int(args[2]))
    elif job == "save-model":
        save_model_forever(Path(args[0]))
    elif job == "load-model":
        load_model(Path(args[0]))
    else:
        raise SystemExit(f"unknown job {job!r}")


if __name__ == "__main__":
    main()
