"""The out-of-tree example plugin in plugins/, installed for real, selected from a config file, and passing
its own tests (amk.testing's ranker contract) as its author would run them."""

import json
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, amk_env

from amk.core.ranker import Ranker
from amk.testing import ranker_checks

PLUGIN = REPO_ROOT / "plugins" / "amk-ridge-ranker"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(PLUGIN)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    return target


def test_amk_plugins_lists_the_installed_example_plugin_once(run_amk, installed):
    result = run_amk("plugins", "--json", env=amk_env([str(installed)]))
    assert result.returncode == 0, result.stderr
    ridge = [r for r in json.loads(result.stdout)["implementations"] if r["name"] == "ridge"]
    assert len(ridge) == 1
    assert (ridge[0]["kind"], ridge[0]["distribution"], ridge[0]["version"]) == ("ranker", "amk-ridge-ranker", "0.1.0")


def test_a_config_file_selects_the_plugin_ranker_by_name(run_amk, installed, tmp_path):
    (tmp_path / "amk.toml").write_text('[ranker]\nname = "ridge"\nalpha = 0.25\n')
    result = run_amk("config", "show", "--json", env=amk_env([str(installed)]))
    assert result.returncode == 0, result.stderr
    ranker = json.loads(result.stdout)["sections"]["ranker"]
    assert ranker["name"]["value"] == "ridge"
    assert ranker["options"]["alpha"]["value"] == 0.25


def test_the_plugin_ranker_fits_and_orders_by_its_prediction(installed, monkeypatch):
    monkeypatch.syspath_prepend(str(installed))
    import numpy as np

    from amk.core.plugins import build_registry

    ranker = build_registry().create(Ranker, "ridge")
    X = np.arange(20, dtype=float).reshape(10, 2)
    y = X[:, 0] * 2.0 + 1.0
    scores = ranker.fit(X, y).predict(X[::-1])
    assert np.all(np.diff(scores) < 0)


def test_the_plugins_own_tests_run_amks_ranker_contract_on_it_and_pass(installed):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=PLUGIN,
        env=amk_env([str(installed)]), capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    checks = len(ranker_checks())
    assert f"{2 * checks} passed" in result.stdout.splitlines()[-1], result.stdout[-2000:]
