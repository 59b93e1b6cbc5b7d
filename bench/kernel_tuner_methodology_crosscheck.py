"""amk's reimplementation of the autotuning methodology's score against the package itself.

On one uncompressed Kernel Tuner cache: the space's size, the cutoff range (fevals), the random-search
curve, and one Kernel Tuner run (diff_evo, seed 0, 200 evaluations) standardised by the package's
``RandomSearchCalculatedBaseline`` and scored by ``amk.integrations.kernel_tuner.methodology``, over the
package's full range (no clipping to the budget), so both must agree exactly.

Needs the package, which amk does not depend on: in a separate venv,
``pip install autotuning-methodology==1.1.0`` (it pulls kernel_tuner), then

    PYTHONPATH=. python bench/kernel_tuner_methodology_crosscheck.py CACHE.json
"""
import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")
from autotuning_methodology.baseline import RandomSearchCalculatedBaseline
from autotuning_methodology.searchspace_statistics import SearchspaceStatistics
from kernel_tuner import util as ktu
from kernel_tuner.file_utils import get_t4_results

from amk.integrations.kernel_tuner import methodology as m
from amk.integrations.kernel_tuner.harness import ReplayedCache, run_strategy

path = Path(sys.argv[1])
c = json.loads(path.read_text())
results = []
for v in c["cache"].values():
    r = dict(v)
    if not isinstance(r.get("time"), (int, float)):
        r["__error__"] = {"InvalidConfig": ktu.InvalidConfig(), "CompilationFailedConfig": ktu.CompilationFailedConfig()}.get(str(r["time"]), ktu.RuntimeFailedConfig())
    for k in ["compile_time", "benchmark_time", "framework_time", "strategy_time", "verification_time"]:
        r.setdefault(k, 0.0)
    results.append(r)
t4 = get_t4_results(results, c["tune_params"], objective="time")
t4file = Path(tempfile.mkdtemp()) / "ss_T4.json"
t4file.write_text(json.dumps(dict(t4, metadata={"timeunit": "milliseconds"})))
ss = SearchspaceStatistics("app", "dev", True, ["compilation", "benchmark", "framework", "search_algorithm", "validation"], ["time"], t4file, full_validate=False)
cache = ReplayedCache.read(path)
dist = np.sort(np.asarray(cache.valid_ms))
print("N pkg/amk", len(ss.objective_performances_total_sorted), len(dist))
s_pkg, e_pkg = ss.cutoff_point(0.01)[1], ss.cutoff_point(0.95)[1]
first, last = m.score_range(dist, budget=10**9)
print("range pkg", s_pkg, e_pkg, "amk", first, last)
ks = np.arange(first, last + 1)
base = RandomSearchCalculatedBaseline(ss)
print("random curve max |diff|", float(np.max(np.abs(base.get_curve_over_fevals(ks) - m.random_search_curve(dist, ks)))))
run = run_strategy(cache, "diff_evo", seed=0, budget=200)
seq = run.times_ms()
best = np.minimum.accumulate(np.asarray(seq, float))
b = best[np.minimum(ks, len(best)) - 1]
(P,) = base.get_standardised_curves(ks, [b], x_type="fevals")
print("diff_evo seed 0: package-standardised mean", round(float(np.mean(P)), 4), "amk", round(m.performance_score([seq], dist, 10**9).score, 4))
