"""Every example in docs/plugins.md runs as written: each plugin example registers what it says through its
hook, and the example test file passes every amk.testing check on those plugins."""

import re
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, amk_env
from plugin_helpers import write_distribution

from amk.testing import backend_checks, featurizer_checks, ranker_checks, store_checks

DOC = REPO_ROOT / "docs" / "plugins.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
HOOKS = ("register_rankers", "register_featurizers", "register_stores", "register_backends")
PLUGIN_EXAMPLES = [e for e in EXAMPLES if any(f"def {h}(" in e for h in HOOKS)]
TEST_EXAMPLES = [e for e in EXAMPLES if "from amk.testing import" in e]


def test_the_doc_has_one_example_per_hook_and_a_test_file_for_them():
    found = sorted(h for example in PLUGIN_EXAMPLES for h in HOOKS if f"def {h}(" in example)
    assert found == sorted(HOOKS)
    assert len(TEST_EXAMPLES) == 1 and len(PLUGIN_EXAMPLES) + len(TEST_EXAMPLES) == len(EXAMPLES)


@pytest.mark.parametrize("example", PLUGIN_EXAMPLES, ids=[next(h for h in HOOKS if h in e) for e in PLUGIN_EXAMPLES])
def test_the_example_runs(example, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(example)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=amk_env(), timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert " ok" in result.stdout


@pytest.mark.parametrize("example", PLUGIN_EXAMPLES, ids=[next(h for h in HOOKS if h in e) for e in PLUGIN_EXAMPLES])
def test_the_example_is_registered_when_installed(example, tmp_path, monkeypatch):
    module = "doc_example_" + next(h for h in HOOKS if h in example)
    write_distribution(tmp_path / "site", f"amk-{module}", module, example)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    from amk.core.plugins import build_registry

    registry = build_registry()
    assert not [p for p in registry.problems if p.plugin == module]
    plugin = next(p for p in registry.plugins if p.name == module)
    assert plugin.hooks and plugin.distribution == f"amk-{module}"
    sys.modules.pop(module, None)


def test_the_example_test_file_passes_every_check_on_the_example_plugins(tmp_path):
    (tmp_path / "amk_my_plugin.py").write_text("\n\n".join(PLUGIN_EXAMPLES))
    (tmp_path / "test_contract.py").write_text(TEST_EXAMPLES[0])
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_contract.py"],
                            cwd=tmp_path, env=amk_env([str(tmp_path)]), capture_output=True, text=True, timeout=600,
                            check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    checks = len(store_checks()) + len(ranker_checks()) + len(featurizer_checks()) + len(backend_checks())
    assert result.stdout.splitlines()[-1].startswith(f"{checks} passed"), result.stdout[-2000:]
