"""Whole flows across the store, the prior and the tune loop, as a user runs them on the defaults."""

import json

LLAMA_1B = "hidden=2048,n_layers=16,n_heads=32,n_kv_heads=8,head_dim=64,intermediate=8192,vocab=128256"
LLAMA_3B = "hidden=3072,n_layers=28,n_heads=24,n_kv_heads=8,head_dim=128,intermediate=8192,vocab=128256"


def _tune(run_amk, shape, name, budget=12):
    return run_amk("tune", "--workload", f"decode:{name}", "--shape", shape, "--device", "h100",
                   "--budget", str(budget), "--json")


def test_a_second_tune_on_the_default_store_reads_what_the_first_appended(run_amk):
    first = _tune(run_amk, LLAMA_1B, "llama-1b")
    assert first.returncode == 0, first.stderr
    second = _tune(run_amk, LLAMA_3B, "llama-3b")
    assert second.returncode == 0, second.stderr
    stats = json.loads(run_amk("corpus", "stats", "--json").stdout)
    assert stats["total"] == 24 and stats["by_kind"] == {"predicted": 24}


def test_a_second_roofline_run_warm_starts_from_the_predictions_of_the_first(run_amk):
    assert _tune(run_amk, LLAMA_1B, "llama-1b").returncode == 0
    second = _tune(run_amk, LLAMA_3B, "llama-3b")
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)
    assert report["warm_start"], "the second run started cold"
    assert all("h100" in source for source in report["warm_start"])


def test_a_backend_learns_from_its_own_kind_and_from_measurements_by_default():
    from amk.backends.cpu import CpuBackend
    from amk.backends.replay import ReplayBackend
    from amk.backends.roofline import RooflineBackend
    from amk.core.records import MeasurementKind as K
    from amk.tuning.settings import default_learning_kinds

    assert default_learning_kinds(RooflineBackend()) == (K.PREDICTED, K.MEASURED)
    assert default_learning_kinds(ReplayBackend()) == (K.REPLAYED, K.MEASURED)
    assert default_learning_kinds(CpuBackend()) == (K.MEASURED,)  # never from predictions or replays


def test_the_jsonl_columns_stay_consistent_after_appends(tmp_path, upstream_corpus):
    from amk.formats import read_file
    from amk.stores.jsonl import JsonlStore

    store = JsonlStore(JsonlStore.Options(path=str(tmp_path / "c.jsonl")))
    records = [item.record for item in read_file(upstream_corpus)]
    store.append(records[:20])
    first = store.columns()
    store.append(records[20:])
    again = store.columns()
    assert len(first) == 20 and len(again) == 44
    subset = again.take(again.mask(device="rtx5090"))
    assert len(subset) == 42
    assert again.source is None or len(again.source) == len(again)
