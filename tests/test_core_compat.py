"""A corpus written by amk 0.1 (before the restructuring of 0.2) reads the same: same records, same ids.

``tests/data/corpus_amk_0_1.jsonl`` was written by amk 0.1 (commit 429f8d3): the 44 original-system
records and a Kernel Tuner cache imported, then a 5-evaluation roofline tune; ``corpus_amk_0_1.ids`` holds
the ``record_id`` amk 0.1 gave each line.
"""

import json
import warnings
from pathlib import Path

import pytest

from amk.core.records import record_from_dict, record_id, record_to_json
from amk.stores.jsonl import JsonlStore

DATA = Path(__file__).parent / "data"


def test_every_record_amk_0_1_wrote_has_the_id_it_had():
    lines = (DATA / "corpus_amk_0_1.jsonl").read_text().splitlines()
    ids = (DATA / "corpus_amk_0_1.ids").read_text().split()
    assert len(lines) == len(ids) == 51
    assert [record_id(record_from_dict(json.loads(line))) for line in lines] == ids
    assert [record_to_json(record_from_dict(json.loads(line))) for line in lines] == lines


def test_a_store_amk_0_1_wrote_reads_whole(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text((DATA / "corpus_amk_0_1.jsonl").read_text())
    with JsonlStore(JsonlStore.Options(path=str(path))) as store:
        assert [record_id(r) for r in store.query()] == (DATA / "corpus_amk_0_1.ids").read_text().split()
        assert store.problems() == []


@pytest.mark.parametrize(("old", "name", "new"), [
    ("amk.core.interfaces", "Ranker", "amk.core.ranker"),
    ("amk.core.interfaces", "NotFittedError", "amk.core.errors"),
    ("amk.core.prior", "warm_start", "amk.prior.warm_start"),
    ("amk.core.tune", "TuneSettings", "amk.tuning.settings"),
    ("amk.core.shapes", "ModelShape", "amk.decode.shapes"),
    ("amk.importers.kernel_tuner", "read_kernel_tuner", "amk.formats.kernel_tuner"),
])
def test_an_import_path_of_amk_0_1_still_works_with_a_deprecation_warning(old, name, new):
    import importlib
    import sys

    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)
    assert any(issubclass(w.category, DeprecationWarning) and old in str(w.message) for w in caught)
