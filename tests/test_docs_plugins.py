"""Every example in docs/plugins.md runs as written and registers what it says through its hook."""

import re
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, amk_env
from plugin_helpers import write_distribution

DOC = REPO_ROOT / "docs" / "plugins.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
HOOKS = ("register_rankers", "register_featurizers", "register_stores", "register_backends")


def test_the_doc_has_one_example_per_hook():
    found = sorted(h for example in EXAMPLES for h in HOOKS if f"def {h}(" in example)
    assert found == sorted(HOOKS)


@pytest.mark.parametrize("example", EXAMPLES, ids=[next(h for h in HOOKS if h in e) for e in EXAMPLES])
def test_the_example_runs(example, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(example)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=amk_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    assert " ok" in result.stdout


@pytest.mark.parametrize("example", EXAMPLES, ids=[next(h for h in HOOKS if h in e) for e in EXAMPLES])
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
