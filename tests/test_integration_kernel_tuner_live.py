"""amk inside Kernel Tuner, live: kernels compiled with g++ and timed on this CPU by Kernel Tuner's C backend.

The documented example (docs/kernel_tuner.md) runs as written; tiny kernels pin failures and Kernel
Tuner's cache file. Times vary run to run on a shared machine, so the tests pin what is recorded and
in which order configs are tried, never how fast they are.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import warnings

import numpy as np
import pytest
from conftest import REPO_ROOT

from amk.core.records import Verdict
from amk.integrations.kernel_tuner import RecordingStrategy
from tests.kernel_tuner_helpers import stored

pytest_plugins = ["kernel_tuner_fixtures"]
pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="Kernel Tuner's C backend needs g++")

DOC = REPO_ROOT / "docs" / "kernel_tuner.md"

# factor 3 cannot be built: the message is one Kernel Tuner classifies as a config the device cannot run
# (as a GPU kernel asking for more shared memory than there is), so it is a failed point, not an error.
SCALE = r"""
#include <time.h>
float scale(float *x, int n) {
#if factor == 3
#error "uses too much shared data"
#elif factor == 4
#error "a bug in the kernel"
#endif
    struct timespec start, stop;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int i = 0; i < n; i++) x[i] *= factor;
    clock_gettime(CLOCK_MONOTONIC, &stop);
    return (stop.tv_sec - start.tv_sec) * 1e3f + (stop.tv_nsec - start.tv_nsec) * 1e-6f;
}
"""


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    """Kernel Tuner's C backend writes its sources in the working directory (and leaves them when g++ fails)."""
    monkeypatch.chdir(tmp_path)


def _tune_scale(kernel_tuner, factors, strategy, cache=None):
    x = np.ones(4096, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no thread block dimensions" (a GPU notion) and the CPU's name
        return kernel_tuner.tune_kernel("scale", SCALE, (4096,), [x, np.int32(4096)], {"factor": factors},
                                        lang="C", strategy=strategy, cache=cache, iterations=3, quiet=True)


def test_the_documented_example_tunes_cold_then_starts_the_next_size_from_the_corpus(kernel_tuner, tmp_path):
    example = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(example, str(DOC), "exec"), {"__name__": "docs_example"})  # noqa: S102 (our own doc)
    records = stored(f"sqlite:{tmp_path / 'corpus.db'}")
    cold = [r for r in records if r.workload.shape["problem_size"] == [128, 128]]
    warm = [r for r in records if r.workload.shape["problem_size"] == [160, 160]]
    assert len(cold) == 6 and len(warm) == 3
    assert {r.provenance.extra["strategy"] for r in cold} == {"random_sample"}
    assert {r.provenance.extra["strategy"] for r in warm} == {"amk"}
    assert {r.measurement.kind.value for r in records} == {"measured"}
    assert len({r.device.name for r in records}) == 1 and records[0].device.name.startswith("cpu-")
    best_cold = min((r for r in cold if r.measurement.verdict is Verdict.PASS), key=lambda r: r.measurement.latency_us)
    assert warm[0].config == best_cold.config


def test_a_config_that_cannot_be_built_is_a_recorded_failure_and_a_cache_hit_is_recorded_once(
        kernel_tuner, tmp_path):
    store, cache = f"jsonl:{tmp_path / 'corpus.jsonl'}", str(tmp_path / "scale_cache.json")
    _tune_scale(kernel_tuner, [1, 2, 3], RecordingStrategy("brute_force", store=store), cache)
    first = stored(store)
    assert [(r.config["factor"], r.measurement.verdict, r.measurement.reason) for r in first] == [
        (1, Verdict.PASS, None), (2, Verdict.PASS, None), (3, Verdict.FAIL, "CompilationFailedConfig")]

    again = RecordingStrategy("brute_force", store=store)
    _tune_scale(kernel_tuner, [1, 2, 3], again, cache)  # all three served from Kernel Tuner's cache file
    assert len(stored(store)) == 3 and again.left_out_known == 3

    elsewhere = f"jsonl:{tmp_path / 'other.jsonl'}"
    _tune_scale(kernel_tuner, [1, 2, 3], RecordingStrategy("brute_force", store=elsewhere), cache)
    hits = stored(elsewhere)
    assert [r.config for r in hits] == [r.config for r in first]
    assert all(r.provenance.extra["cache_hit"] and r.measurement.kind.value == "measured" for r in hits)
    assert [r.provenance.timestamp for r in hits] == [r.provenance.timestamp for r in first]


def test_an_error_kernel_tuner_does_not_classify_ends_the_run_after_the_config_is_recorded(kernel_tuner, tmp_path):
    store = f"jsonl:{tmp_path / 'corpus.jsonl'}"
    with pytest.raises(subprocess.CalledProcessError):
        _tune_scale(kernel_tuner, [1, 4], RecordingStrategy("brute_force", store=store))
    records = stored(store)
    assert [(r.config["factor"], r.measurement.verdict) for r in records] == [(1, Verdict.PASS), (4, Verdict.CRASH)]
    assert "CalledProcessError" in records[1].measurement.reason


def test_a_wrong_result_ends_the_run_as_kernel_tuner_does_and_is_recorded_as_a_wrong_answer(kernel_tuner, tmp_path):
    store, x = f"jsonl:{tmp_path / 'corpus.jsonl'}", np.ones(4096, dtype=np.float32)
    with warnings.catch_warnings(), pytest.raises(RuntimeError, match="verification failed"):
        warnings.simplefilter("ignore")
        kernel_tuner.tune_kernel("scale", SCALE, (4096,), [x, np.int32(4096)], {"factor": [1, 2]}, lang="C",
                                 answer=[x * 1, None], strategy=RecordingStrategy("brute_force", store=store),
                                 iterations=3, quiet=True)  # factor 2 doubles x: a wrong result
    records = stored(store)
    assert [(r.config["factor"], r.measurement.verdict) for r in records] == [(1, Verdict.PASS), (2, Verdict.FAIL)]
    assert records[1].measurement.reason.startswith("wrong answer: Kernel Tuner stopped the run: RuntimeError")
