"""Device similarity: learned from how alike two devices rank the same configs, specs as the fallback,
and architectures of any vendor."""

from __future__ import annotations

import math

import numpy as np
import pytest

from amk.core.columns import CorpusColumns
from amk.core.devices import Device, resolve_device
from amk.prior.distance import device_distance
from amk.prior.features import arch_parts, arch_penalty
from amk.prior.similarity import MIN_SHARED_CONFIGS, device_similarity, rank_similarity
from tests.prior_helpers import kernel, record

N = MIN_SHARED_CONFIGS + 5


def corpus(latency_of: dict[str, callable], workload=None) -> CorpusColumns:
    workload = workload or kernel("other")
    return CorpusColumns.from_records(record(workload, d, {"x": x}, f(x)) for d, f in latency_of.items() for x in range(N))


def test_two_devices_that_rank_the_same_configs_alike_are_similar_learned_from_the_corpus():
    cols = corpus({"gpu-a": lambda x: 10.0 + x, "gpu-b": lambda x: 3.0 * (10.0 + x) ** 1.5,
                   "gpu-c": lambda x: 100.0 - x})
    sims = device_similarity(cols, Device("gpu-a"), [Device("gpu-b"), Device("gpu-c")])
    assert [s.basis for s in sims] == ["corpus", "corpus"]
    assert sims[0].value == pytest.approx(1.0) and sims[1].value == pytest.approx(-1.0)
    assert sims[0].weight == pytest.approx(1.0) and sims[1].weight == 0.0
    assert sims[0].shared_configs == N


def test_the_workload_being_tuned_is_not_learned_from():
    cols = corpus({"gpu-a": lambda x: 10.0 + x, "gpu-b": lambda x: 10.0 + x})
    assert math.isnan(rank_similarity(cols, "gpu-a", "gpu-b", exclude=kernel("other"))[0])


def test_without_enough_shared_configs_similarity_comes_from_specs_and_is_unknown_without_them():
    cols = CorpusColumns.from_records([record(kernel(), "a4000", {"x": 1}, 1.0), record(kernel(), "a100", {"x": 1}, 2.0)])
    sims = device_similarity(cols, resolve_device("a6000"), [resolve_device("a4000"), Device("mystery")])
    assert sims[0].basis == "specs" and sims[0].value == pytest.approx(math.exp(-device_distance(
        resolve_device("a6000"), [resolve_device("a4000")])[0]))
    assert sims[1].basis == "unknown" and sims[1].weight == 0.0


@pytest.mark.parametrize(("arch", "parts"), [
    ("sm_86", ("sm", 8.0, "sm_86")), ("sm_120", ("sm", 12.0, "sm_120")), ("gfx90a", ("gfx", 9.0, "gfx90a")),
    ("gfx90a:sramecc+:xnack-", ("gfx", 9.0, "gfx90a")), ("gfx1100", ("gfx", 11.0, "gfx1100")),
    ("xe-hpc", ("xe", None, "xe-hpc")), (None, None), ("", None)])
def test_architecture_strings_of_every_vendor_parse(arch, parts):
    assert arch_parts(arch) == parts


def test_architectures_compare_within_and_across_vendors():
    same, other_gen, other_vendor, unknown = arch_penalty("gfx90a", ["gfx90a", "gfx1100", "sm_80", None])
    assert same == 0.0 and 0 < other_gen < other_vendor and math.isnan(unknown)
    assert arch_penalty("xe-hpc", ["xe-hpc", "xe-hpg"]).tolist()[0] == 0.0
    assert arch_penalty("xe-hpc", ["xe-hpg"])[0] > 0


def test_devices_known_only_by_architecture_are_near_their_own_architecture():
    mi250x = Device("mi250x", "gfx90a")
    distance = device_distance(mi250x, [Device("mi210", "gfx90a"), Device("w7800", "gfx1100"),
                                        resolve_device("a100"), Device("mystery")])
    assert distance[0] < distance[1] < distance[2] and np.isinf(distance[3])
