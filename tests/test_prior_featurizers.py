"""The amk and generic featurizers: each meets amk.testing's featurizer contract (fixed-length vectors,
vectorised over unique items, saveable state); then what each one encodes and how."""

from __future__ import annotations

import numpy as np

from amk.core.devices import Device, resolve_device
from amk.featurizers.amk import SCHEDULE_FEATURES, AmkFeaturizer, schedule_features
from amk.featurizers.generic import GenericFeaturizer
from amk.testing import featurizer_checks, parametrize_with_checks
from tests.prior_helpers import SMALL, decode, kernel, schedule

A100 = resolve_device("a100")


def test_schedule_features_without_kernel_knobs_equal_those_with_the_default_knobs():
    bare = schedule(64, cols_per_warp=None)
    explicit = {**bare, "kernel_knobs": {"cols_per_warp": 1, "cpasync": 1, "cpa_stages": 4, "cpa_cols": 2}}
    assert schedule_features(bare) == schedule_features(explicit)
    assert len(schedule_features({})) == len(SCHEDULE_FEATURES)


def test_schedule_features_survive_odd_values():
    odd = {"tiling": "nonsense", "sm_assignment": {"0": 1}, "page_allocation": "unheard-of",
           "kernel_knobs": {"cols_per_warp": "two"}, "fusion_grouping": None}
    assert len(schedule_features(odd)) == len(SCHEDULE_FEATURES)


def test_amk_featurizer_gives_decode_and_kernel_points_the_same_length():
    workloads = [decode("m", SMALL), kernel()]
    configs = [schedule(64), {"bx": 32, "mode": "fast"}]
    f = AmkFeaturizer().fit(workloads, [A100], configs)
    X = f.transform(workloads, [A100, A100], configs)
    assert X.shape == (2, len(f.feature_names))
    assert X[0, f.feature_names.index("is_decode")] == 1.0 and X[1, f.feature_names.index("is_decode")] == 0.0
    assert X[0, f.feature_names.index("knob.bx")] == 0.0  # decode configs do not fill generic knob columns


def test_generic_encodes_wide_numeric_knobs_as_log2_and_categories_one_hot():
    configs = [{"bx": 16, "mode": "a"}, {"bx": 256, "mode": "b"}]
    f = GenericFeaturizer().fit([kernel()] * 2, [A100], configs)
    X = f.transform([kernel()] * 2, [A100] * 2, configs)
    names = f.feature_names
    assert X[:, names.index("knob.log2(bx)")].tolist() == [4.0, 8.0]
    assert X[:, names.index("knob.mode=a")].tolist() == [1.0, 0.0]


def test_generic_unseen_category_and_missing_knob_are_encoded_not_refused():
    f = GenericFeaturizer().fit([kernel()] * 2, [A100], [{"bx": 16, "mode": "a"}, {"bx": 32, "mode": "b"}])
    X = f.transform([kernel()], [A100], [{"mode": "zzz"}])
    names = f.feature_names
    assert X[0, names.index("knob.mode=a")] == 0.0 and X[0, names.index("knob.mode=b")] == 0.0
    assert np.isfinite(X).all()


def test_generic_device_with_unknown_specs_gets_the_fitted_mean():
    f = GenericFeaturizer().fit([kernel()], [A100, resolve_device("a4000")], [{"bx": 16}])
    unknown = f.transform([kernel()], [Device("mystery")], [{"bx": 16}])
    known = f.transform([kernel()], [A100], [{"bx": 16}])
    assert np.isfinite(unknown).all() and not np.array_equal(unknown, known)


def test_generic_fits_quietly_on_devices_without_gpu_specs():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning here reached users' terminals during `amk tune --backend cpu`
        f = GenericFeaturizer().fit([kernel()], [Device("cpu-amd-epyc")], [{"bx": 16}])
    assert np.isfinite(f.transform([kernel()], [Device("cpu-amd-epyc")], [{"bx": 16}])).all()


@parametrize_with_checks([*featurizer_checks(AmkFeaturizer, label="amk"),
                          *featurizer_checks(GenericFeaturizer, label="generic")])
def test_a_built_in_featurizer_meets_the_featurizer_contract(check):
    check()


def test_schedule_features_read_any_mapping_like_a_dict():
    from types import MappingProxyType

    from amk.featurizers.amk import schedule_feature_matrix

    config = {"tiling": {"gemv": {"N_tile": 64}}, "threads_per_block": 256, "sm_assignment": {"0": [1]},
              "kernel_knobs": {"cols_per_warp": 2}}
    proxied = MappingProxyType({**config, "tiling": MappingProxyType({"gemv": MappingProxyType({"N_tile": 64})}),
                                "sm_assignment": MappingProxyType({"0": [1]}),
                                "kernel_knobs": MappingProxyType({"cols_per_warp": 2})})
    assert np.array_equal(schedule_feature_matrix([config]), schedule_feature_matrix([proxied]))
