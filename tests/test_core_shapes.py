import math
from types import SimpleNamespace

import pytest

from amk.core.errors import ValidationError
from amk.decode.shapes import ModelShape

LLAMA_1B = ModelShape(hidden=2048, n_layers=16, n_heads=32, n_kv_heads=8, head_dim=64, intermediate=8192,
                      vocab=128256)


def test_from_config_reads_attributes_and_defaults_kv_heads_to_heads():
    cfg = SimpleNamespace(hidden=1024, n_layers=2, n_heads=16, head_dim=64, intermediate=4096, vocab=1000)
    shape = ModelShape.from_config(cfg)
    assert shape.n_kv_heads == 16
    assert shape.hidden == 1024 and shape.vocab == 1000


def test_from_config_reads_mappings_too():
    assert ModelShape.from_config({"hidden": 64, "n_heads": 4}).n_kv_heads == 4


def test_from_graph_uses_the_graphs_config():
    graph = SimpleNamespace(config=SimpleNamespace(hidden=512, n_heads=8, n_kv_heads=2))
    assert ModelShape.from_graph(graph) == ModelShape(hidden=512, n_heads=8, n_kv_heads=2)


def test_feature_vec_is_log_scaled_with_gqa_and_ffn_ratio():
    vec = LLAMA_1B.feature_vec()
    assert vec[0] == pytest.approx(math.log1p(2048))
    assert vec[3] == pytest.approx(4.0)  # 32 heads / 8 kv heads
    assert vec[5] == pytest.approx(4.0)  # 8192 / 2048
    assert len(vec) == 7


def test_distance_is_zero_for_the_same_shape_and_grows_with_difference():
    near = ModelShape(hidden=2048, n_layers=22, n_heads=32, n_kv_heads=8, head_dim=64, intermediate=8192,
                      vocab=128256)
    far = ModelShape(hidden=8192, n_layers=80, n_heads=64, n_kv_heads=8, head_dim=128, intermediate=28672,
                     vocab=128256)
    assert LLAMA_1B.distance(LLAMA_1B) == 0.0
    assert 0 < LLAMA_1B.distance(near) < LLAMA_1B.distance(far)


@pytest.mark.parametrize("bad", [-1, 1.5, "2048", True])
def test_a_negative_or_non_integer_dimension_is_refused_with_its_name(bad):
    with pytest.raises(ValidationError, match="hidden"):
        ModelShape(hidden=bad)


def test_a_non_numeric_config_field_is_a_clear_error():
    with pytest.raises(ValidationError, match="hidden"):
        ModelShape.from_config({"hidden": "big"})


def test_from_mapping_refuses_unknown_fields():
    with pytest.raises(ValidationError, match="layers"):
        ModelShape.from_mapping({"layers": 3})
