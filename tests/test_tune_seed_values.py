"""Warm-start seeds match a search space by value: what the space defines its knobs as decides, and every
seed that still cannot be used is counted with its reason; "cold start" is said only when it is true."""

from __future__ import annotations

from pathlib import Path

import pytest

from amk.backends.replay import ReplayBackend
from amk.core.columns import CorpusColumns
from amk.core.devices import resolve_device
from amk.core.space import Knob, SearchSpace
from amk.core.workload import Workload
from amk.formats import read_file
from amk.tuning.settings import TuneSettings
from amk.tuning.target import (
    BREAKS_CONSTRAINT,
    NOT_A_VALUE,
    UNKNOWN_KNOBS,
    TuneTarget,
    seed_in_space,
)

CASES = Path(__file__).parent / "data" / "ingest"
SPACE = SearchSpace([Knob("bx", (32, 64)), Knob("tile", (1, 2, 4)), Knob("flag", (0, 1)), Knob("mode", ("a", "b"))],
                    constraints=(lambda c: c["bx"] * c["tile"] <= 128,), constraint_texts=("bx*tile <= 128",))


def test_numbers_compare_by_value_and_a_bool_equals_0_or_1_on_a_0_1_knob():
    mapped, why, defaulted = seed_in_space(SPACE, {"bx": 64.0, "tile": 2.0, "flag": True, "mode": "a"})
    assert (mapped, why, defaulted) == ({"bx": 64, "tile": 2, "flag": 1, "mode": "a"}, None, False)
    assert type(mapped["bx"]) is int and type(mapped["flag"]) is int


def test_a_bool_is_no_value_of_a_knob_that_is_not_0_1_and_text_is_not_a_number():
    assert seed_in_space(SPACE, {"bx": 32, "tile": True, "flag": 0, "mode": "a"})[1] == NOT_A_VALUE
    assert seed_in_space(SPACE, {"bx": "32", "tile": 1, "flag": 0, "mode": "a"})[1] == NOT_A_VALUE


def test_a_knob_the_seed_lacks_takes_the_spaces_default():
    mapped, why, defaulted = seed_in_space(SPACE, {"bx": 32, "tile": 4, "flag": False})
    assert (mapped, why, defaulted) == ({"bx": 32, "tile": 4, "flag": 0, "mode": "a"}, None, True)


def test_a_seed_with_a_knob_the_space_lost_or_breaking_a_constraint_says_why():
    assert seed_in_space(SPACE, {"bx": 32, "tile": 1, "flag": 0, "mode": "a", "old": 3}) == (None, UNKNOWN_KNOBS, False)
    assert seed_in_space(SPACE, {"bx": 64, "tile": 4, "flag": 0, "mode": "a"}) == (None, BREAKS_CONSTRAINT, False)


def _target(corpus_files: list[str], replayed: str, device: str, transfer: bool = True) -> TuneTarget:
    records = [i.record for name in corpus_files for i in read_file(CASES / name) if i.record]
    backend = ReplayBackend(ReplayBackend.Options(cache=str(CASES / replayed)))
    workload = Workload("kernel_tuner", "mixk", {"problem_size": [1024, 1024]})
    return TuneTarget.prepare(workload, resolve_device(device), backend, CorpusColumns.from_records(records),
                              TuneSettings(warm_start=3, transfer=transfer))


def test_seeds_of_a_cache_written_2_0_and_true_seed_a_space_written_2_and_1():
    # Without transfer the corpus's best records seed; with it (the default) the other device's zero-shot
    # order of the same configs, matched by the same values.
    target = _target(["mixed-types-a100.json"], "mixed-types-a4000.json", "NVIDIA RTX A4000", transfer=False)
    assert len(target.seeds) == 3 and target.skipped_seeds == 0
    assert all("mixed-types-a100.json#" in s for s in target.seed_sources)
    zero = _target(["mixed-types-a100.json"], "mixed-types-a4000.json", "NVIDIA RTX A4000")
    assert zero.seeds == target.seeds and all("zero-shot order" in s for s in zero.seed_sources)


def test_seeds_the_space_cannot_take_are_counted_by_reason_and_no_cold_start_is_claimed(tmp_path):
    # The a4000 space has tile 1, 2, 4; the corpus's a100 seeds below use tile 3 (no value of the space).
    text = (CASES / "mixed-types-a100.json").read_text().replace('"tile": 2.0', '"tile": 3.0') \
        .replace('"tile": 1.0', '"tile": 3.0').replace('"tile": 4.0', '"tile": 3.0')
    (tmp_path / "off-space.json").write_text(text)
    records = [i.record for i in read_file(tmp_path / "off-space.json") if i.record]
    backend = ReplayBackend(ReplayBackend.Options(cache=str(CASES / "mixed-types-a4000.json")))
    workload = Workload("kernel_tuner", "mixk", {"problem_size": [1024, 1024]})
    target = TuneTarget.prepare(workload, resolve_device("a4000"), backend, CorpusColumns.from_records(records),
                                TuneSettings(warm_start=3, transfer=False))
    assert target.skipped_seeds > 0 and target.skipped_reasons == {NOT_A_VALUE: target.skipped_seeds}
    assert target.seeds == [] and target.seed_sources == []  # a Kernel Tuner space names no default config
    assert "cold start" not in target.unseeded and "none usable in this search space" in target.unseeded


@pytest.mark.parametrize("corpus", [[], ["export-gemm-1024.json"]])
def test_cold_start_is_said_when_the_corpus_has_nothing_for_the_workload(corpus):
    target = _target(corpus, "mixed-types-a4000.json", "a4000")
    assert target.skipped_seeds == 0 and target.seeds == [] and "cold start" in target.unseeded
    assert "names no default config, so the first picks are random" in target.unseeded
