"""amk.testing's checks can fail: a small correct implementation of each kind passes every check, and each
deliberately broken variant of it (one wrong behaviour) is caught by the check named after that behaviour."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import attrs
import numpy as np
import pytest
from conftest import amk_env

from amk.core.backend import Backend
from amk.core.devices import Device
from amk.core.errors import RecordError
from amk.core.featurizer import Featurizer
from amk.core.implementation import check_is_fitted
from amk.core.ranker import Ranker
from amk.core.records import Measurement, MeasurementKind, Record, Verdict, record_from_dict, record_to_json
from amk.core.space import Knob, SearchSpace
from amk.core.store import CorpusProblem, CorpusQuery, Store
from amk.core.workload import Workload
from amk.testing import (
    check_backend,
    check_featurizer,
    check_ranker,
    check_store,
    parametrize_with_checks,
    ranker_checks,
    run_checks,
    store_checks,
)

# -- stores -------------------------------------------------------------------------------------------------


class LinesStore(Store):
    """Records as JSON lines in a list shared by name (so a second instance sees them); reports bad lines."""

    name: ClassVar[str] = "lines"
    shared: ClassVar[dict[str, list[str]]] = {}

    @attrs.frozen
    class Options:
        key: str = ""

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.lines = self.shared.setdefault(self.options.key, [])
        self._problems: list[CorpusProblem] = []

    def append(self, records: Iterable[Record]) -> int:
        batch = [record_to_json(r) for r in records]
        self.lines.extend(batch)
        return len(batch)

    def _scan(self) -> Iterator[Record]:
        self._problems = []
        for n, line in enumerate(list(self.lines), 1):
            try:
                yield record_from_dict(json.loads(line), where=f"line {n}")
            except (ValueError, RecordError) as exc:
                self._problems.append(CorpusProblem(f"line {n}", str(exc)))

    def problems(self) -> list[CorpusProblem]:
        return list(self._problems)

    def identity(self):
        return ("lines", self.options.key)


def lines_store(directory: Path) -> LinesStore:
    return LinesStore(LinesStore.Options(key=str(directory)))


def spoil_a_line(store: Store) -> None:
    store.lines[1] = '{"measurement": 7'


class DroppingStore(LinesStore):
    """Loses the last record of every batch, but says it appended all of them."""

    def append(self, records: Iterable[Record]) -> int:
        batch = list(records)
        super().append(batch[:-1])
        return len(batch)


class NewestFirstStore(LinesStore):
    """Reads its records back newest first."""

    def _scan(self) -> Iterator[Record]:
        return reversed(list(super()._scan()))


class CountEverythingStore(LinesStore):
    """A "fast" count that forgets to apply the query."""

    def count(self, query: CorpusQuery | None = None) -> int:
        return len(self.lines)


class QuietlySkippingStore(LinesStore):
    """Skips unreadable lines without reporting them."""

    def problems(self) -> list[CorpusProblem]:
        return []


class BrokenStatsStore(LinesStore):
    """stats() raises instead of answering."""

    def stats(self):
        raise TypeError("stats is not implemented")


def test_a_correct_store_passes_every_store_check():
    report = check_store(lines_store, spoil_entry=spoil_a_line)
    assert len(report.passed) == len(store_checks()) and report.skipped == {}


@pytest.mark.parametrize(("broken", "check"), [
    (DroppingStore, "records_come_back_identical_and_in_append_order"),
    (NewestFirstStore, "records_come_back_identical_and_in_append_order"),
    (CountEverythingStore, "query_and_count_match_the_generic_filter"),
    (QuietlySkippingStore, "an_unreadable_entry_is_reported_by_problems"),
    (BrokenStatsStore, "stats_match_the_generic_counts"),
])
def test_a_broken_store_is_caught_by_the_check_of_what_it_breaks(broken, check):
    with pytest.raises(AssertionError, match=f"the store check '{check}'") as caught:
        check_store(lambda directory: broken(broken.Options(key=str(directory))), spoil_entry=spoil_a_line)
    assert "failed" in str(caught.value) or "raised" in str(caught.value)


def test_a_store_that_cannot_be_reopened_skips_the_checks_that_need_a_second_handle():
    report = check_store(lines_store, reopen=None)
    assert set(report.skipped) == {"records_survive_closing_the_store", "a_second_handle_sees_appends_made_through_the_first",
                                   "an_append_made_while_a_read_is_in_progress_is_kept",
                                   "an_unreadable_entry_is_reported_by_problems", "a_second_handle_is_the_same_store"}


# -- rankers ------------------------------------------------------------------------------------------------


class LeastSquaresRanker(Ranker):
    """A linear least-squares fit: correct in every way the contract asks."""

    name: ClassVar[str] = "least_squares"

    def fit(self, X, y, groups=None):
        A = np.column_stack([np.asarray(X, dtype=float), np.ones(len(X))])
        self.coef_ = np.linalg.lstsq(A, np.asarray(y, dtype=float), rcond=None)[0]
        return self

    def predict(self, X):
        check_is_fitted(self, "coef_")
        return np.column_stack([np.asarray(X, dtype=float), np.ones(len(X))]) @ self.coef_

    def save(self, path):
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "model.json").write_text(json.dumps({"coef": self.coef_.tolist()}))

    @classmethod
    def load(cls, path):
        ranker = cls()
        ranker.coef_ = np.asarray(json.loads((Path(path) / "model.json").read_text())["coef"])
        return ranker


class ColumnScoresRanker(LeastSquaresRanker):
    def predict(self, X):
        return super().predict(X)[:, None]  # (n, 1), not (n,)


class HigherIsBetterRanker(LeastSquaresRanker):
    def predict(self, X):
        return -super().predict(X)


class ZeroBeforeFitRanker(LeastSquaresRanker):
    def predict(self, X):
        if not hasattr(self, "coef_"):
            return np.zeros(len(X))
        return super().predict(X)


class NoisyRanker(LeastSquaresRanker):
    def fit(self, X, y, groups=None):
        super().fit(X, y, groups)
        self.coef_ = self.coef_ + np.random.default_rng().normal(0, 1e-3, len(self.coef_))
        return self


class PicklingRanker(LeastSquaresRanker):
    def save(self, path):
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "model.bin").write_bytes(pickle.dumps(self.coef_))

    @classmethod
    def load(cls, path):
        ranker = cls()
        ranker.coef_ = pickle.loads((Path(path) / "model.bin").read_bytes())  # what the check catches
        return ranker


class ForgetfulLoadRanker(LeastSquaresRanker):
    @classmethod
    def load(cls, path):
        ranker = cls()
        ranker.coef_ = np.zeros(4)
        return ranker


class EagerRanker(LeastSquaresRanker):
    def __init__(self, options=None):
        super().__init__(options)
        self.coef_ = np.zeros(4)


def test_a_correct_ranker_passes_every_ranker_check():
    assert len(check_ranker(LeastSquaresRanker).passed) == len(ranker_checks())


@pytest.mark.parametrize(("broken", "check"), [
    (ColumnScoresRanker, "predict_returns_one_finite_score_per_row"),
    (HigherIsBetterRanker, "lower_scores_for_lower_targets"),
    (ZeroBeforeFitRanker, "predict_before_fit_raises_not_fitted_error"),
    (NoisyRanker, "fit_is_deterministic"),
    (PicklingRanker, "saved_model_is_data_only"),
    (ForgetfulLoadRanker, "saved_model_loads_and_predicts_the_same"),
    (EagerRanker, "init_only_stores_options"),
])
def test_a_broken_ranker_is_caught_by_the_check_of_what_it_breaks(broken, check):
    with pytest.raises(AssertionError, match=f"the ranker check '{check}'"):
        check_ranker(broken)


# -- featurizers --------------------------------------------------------------------------------------------


class NumericKnobsFeaturizer(Featurizer):
    """Every numeric top-level knob seen in fit, plus the device's bandwidth (0 when unknown)."""

    name: ClassVar[str] = "numeric_knobs"

    def fit(self, workloads, devices, configs):
        self.knobs_ = sorted({k for c in configs for k, v in c.items()
                              if isinstance(v, (int, float)) and not isinstance(v, bool)})
        return self

    @property
    def feature_names(self):
        check_is_fitted(self, "knobs_")
        return [f"knob.{k}" for k in self.knobs_] + ["bandwidth"]

    def transform(self, workloads, devices, configs):
        check_is_fitted(self, "knobs_")
        rows = [[float(c.get(k, 0)) if isinstance(c.get(k, 0), (int, float)) else 0.0 for k in self.knobs_]
                + [d.mem_bandwidth_gbps or 0.0] for d, c in zip(devices, configs)]
        return np.asarray(rows, dtype=float).reshape(len(configs), len(self.knobs_) + 1)

    def get_state(self):
        return {"knobs": list(self.knobs_)}

    def set_state(self, state):
        self.knobs_ = list(state["knobs"])
        return self


class ShortNamesFeaturizer(NumericKnobsFeaturizer):
    @property
    def feature_names(self):
        return super().feature_names[:-1]


class FirstRowIndexedFeaturizer(NumericKnobsFeaturizer):
    def transform_indexed(self, workloads, devices, configs, workload_index, device_index, config_index):
        return self.transform(workloads[:1] * len(config_index), devices[:1] * len(config_index),
                              [configs[0]] * len(config_index))


class NumpyStateFeaturizer(NumericKnobsFeaturizer):
    def get_state(self):
        return {"knobs": np.asarray(self.knobs_)}  # not JSON-ready


class BatchScaledFeaturizer(NumericKnobsFeaturizer):
    def transform(self, workloads, devices, configs):
        X = super().transform(workloads, devices, configs)
        return X - X.mean(axis=0)  # centred on the batch: a row depends on the rest of it


def test_a_correct_featurizer_passes_every_featurizer_check():
    check_featurizer(NumericKnobsFeaturizer)


@pytest.mark.parametrize(("broken", "check"), [
    (ShortNamesFeaturizer, "feature_names_name_every_column_once"),
    (FirstRowIndexedFeaturizer, "transform_indexed_equals_transform_of_the_expanded_points"),
    (NumpyStateFeaturizer, "state_round_trips_through_json"),
    (BatchScaledFeaturizer, "transform_encodes_each_point_on_its_own"),
])
def test_a_broken_featurizer_is_caught_by_the_check_of_what_it_breaks(broken, check):
    with pytest.raises(AssertionError, match=f"the featurizer check '{check}'"):
        check_featurizer(broken)


# -- backends -----------------------------------------------------------------------------------------------

WORKLOAD = Workload("toy", "grid", {"n": 8})
DEVICE = Device("toy-device")


class GridBackend(Backend):
    """Predicts 10 + (x - 3)^2 + y microseconds on a small grid; records store the knobs nested."""

    name: ClassVar[str] = "grid"
    version: ClassVar[str] = "1"
    measurement_kind: ClassVar[MeasurementKind] = MeasurementKind.PREDICTED

    def search_space(self, workload, device):
        return SearchSpace([Knob("x", range(8)), Knob("y", (1, 2, 4))], constraints=[lambda c: c["x"] * c["y"] < 20])

    def record_config(self, workload, knobs):
        return {"grid": dict(knobs)}

    def knob_config(self, workload, config):
        return dict(config["grid"]) if "grid" in config else dict(config)

    def measure(self, workload, device, config):
        knobs = self.knob_config(workload, config)
        self.validate(workload, device, knobs)
        return Measurement(verdict=Verdict.PASS, kind=self.measurement_kind,
                           latency_us=10.0 + (knobs["x"] - 3) ** 2 + knobs["y"])


class AcceptingBackend(GridBackend):
    def validate(self, workload, device, config):
        return None  # accepts anything


class MislabelledBackend(GridBackend):
    def measure(self, workload, device, config):
        return attrs.evolve(super().measure(workload, device, config), kind=MeasurementKind.MEASURED)


class FlatRecordsBackend(GridBackend):
    def knob_config(self, workload, config):
        return dict(config)  # forgets to unwrap the record layout


class ZeroFloorBackend(GridBackend):
    def floor_us(self, workload, device):
        return 0.0


def test_a_correct_backend_passes_every_backend_check():
    check_backend(GridBackend, WORKLOAD, DEVICE)


@pytest.mark.parametrize(("broken", "check"), [
    (AcceptingBackend, "validate_refuses_a_value_outside_the_space"),
    (MislabelledBackend, "measure_returns_a_pass_of_the_backends_kind"),
    (FlatRecordsBackend, "record_config_is_json_ready_and_knob_config_inverts_it"),
    (ZeroFloorBackend, "floor_is_none_or_positive"),
])
def test_a_broken_backend_is_caught_by_the_check_of_what_it_breaks(broken, check):
    with pytest.raises(AssertionError, match=f"the backend check '{check}'"):
        check_backend(broken, WORKLOAD, DEVICE)


# -- running checks -----------------------------------------------------------------------------------------


def test_run_checks_names_every_failed_check_and_what_it_expected():
    with pytest.raises(AssertionError) as caught:
        run_checks(ranker_checks(HigherIsBetterRanker))
    message = str(caught.value)
    assert message.startswith("1 of 12 ranker checks failed:")
    assert "'lower_scores_for_lower_targets'" in message and "expected above 0.8" in message


def test_a_check_that_raises_is_reported_as_failed_with_the_error():
    with pytest.raises(AssertionError, match=r"'stats_match_the_generic_counts'.*raised TypeError: stats is not"):
        check_store(lambda directory: BrokenStatsStore(BrokenStatsStore.Options(key=str(directory))))


@parametrize_with_checks(ranker_checks(LeastSquaresRanker, label="least_squares"))
def test_parametrize_with_checks_makes_each_check_a_test(check, request):
    assert request.node.callspec.id == f"least_squares-{check.name}"
    check()


@parametrize_with_checks(store_checks(spoil_entry=spoil_a_line))
def test_a_check_runs_with_the_factory_given_when_it_runs(check):
    check(make_store=lines_store)


def test_importing_amk_testing_does_not_import_pytest():
    code = "import sys, amk.testing; assert 'pytest' not in sys.modules, 'pytest was imported'"
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=amk_env(),
                            timeout=120)
    assert result.returncode == 0, result.stderr


def test_a_constant_prediction_has_no_rank_correlation():
    import numpy as np

    from amk.testing.rankers import rank_correlation

    assert rank_correlation(np.zeros(5), np.arange(5.0)) == 0.0
    assert rank_correlation(np.arange(5.0), np.arange(5.0)) == pytest.approx(1.0)
