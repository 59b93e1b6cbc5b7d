import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import amk_env
from plugin_helpers import write_distribution, write_ranker_plugin

from amk.core.errors import MissingDependencyError, PluginError, UnknownNameError
from amk.core.kinds import KINDS
from amk.core.plugins import build_registry
from amk.core.ranker import Ranker
from amk.core.store import Store


@pytest.fixture
def site(tmp_path, monkeypatch):
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    yield path
    for name in [m for m in sys.modules if m.startswith("plug_")]:
        del sys.modules[name]


def test_built_ins_are_registered_through_the_same_hooks():
    registry = build_registry(include_entry_points=False)
    jsonl = registry.get(Store, "jsonl")
    assert jsonl.plugin == "amk.stores" and jsonl.distribution == "amk"
    assert "register_stores" in next(p for p in registry.plugins if p.name == "amk.stores").hooks


def test_building_the_registry_imports_no_implementation_module_nor_numpy():
    code = ("import sys; from amk.core.plugins import build_registry; build_registry(include_entry_points=False); "
            "loaded = [m for m in sys.modules if m == 'numpy' or m.count('.') == 2 and m.split('.')[1] in "
            "('stores', 'featurizers', 'rankers', 'backends')]; print(loaded)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert done.stdout.split()[0] == "[]", done.stdout


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_every_built_in_declares_the_name_and_requires_of_its_class(kind):
    registry = build_registry(include_entry_points=False)
    for name in registry.names(kind):
        impl = registry.get(kind, name)
        assert issubclass(impl.cls, kind.base)  # imports it; a mismatch with the declaration raises PluginError
        assert (impl.cls.name, dict(impl.cls.requires)) == (name, dict(impl.requires))


def test_a_lazy_registration_is_imported_on_first_use_and_checked_against_its_declaration(site):
    write_distribution(site, "amk-lazy", "plug_lazy", """
        import amk
        from amk.core.implementation import LazyImplementation

        @amk.hookimpl
        def register_rankers(register):
            register(LazyImplementation("lazy", "plug_lazy_impl:LazyRanker"))
            register(LazyImplementation("liar", "plug_lazy_impl:LazyRanker"))
    """)
    (site / "plug_lazy_impl.py").write_text(textwrap.dedent("""
        from amk.core.ranker import Ranker

        class LazyRanker(Ranker):
            name = "lazy"
            fit = predict = None
    """))
    registry = build_registry()
    assert "plug_lazy_impl" not in sys.modules
    assert registry.get(Ranker, "lazy").cls.__name__ == "LazyRanker"
    with pytest.raises(PluginError, match=r"registered as 'liar' but its class is named 'lazy'"):
        _ = registry.get(Ranker, "liar").cls


def test_a_lazy_registration_whose_module_is_missing_is_an_error_naming_it(site):
    write_distribution(site, "amk-gone", "plug_gone", """
        import amk
        from amk.core.implementation import LazyImplementation

        @amk.hookimpl
        def register_rankers(register):
            register(LazyImplementation("gone", "plug_gone_impl:Gone"))
    """)
    with pytest.raises(PluginError, match=r"'gone' \(plug_gone_impl:Gone, from plugin 'plug_gone'.*ModuleNotFoundError"):
        build_registry().create(Ranker, "gone")


def test_an_installed_plugin_is_loaded_from_the_amk_entry_point_group(site):
    write_ranker_plugin(site, "amk-team-ranker", "plug_team", "team")
    impl = build_registry().get(Ranker, "team")
    assert (impl.distribution, impl.version, impl.plugin) == ("amk-team-ranker", "1.2.3", "plug_team")


def test_a_plugin_that_fails_to_import_is_reported_and_skipped(site):
    write_distribution(site, "amk-broken", "plug_broken", "raise ImportError('needs libfoo')")
    write_ranker_plugin(site, "amk-good", "plug_good", "good")
    registry = build_registry()
    assert registry.get(Ranker, "good")
    [problem] = [p for p in registry.problems if p.plugin == "plug_broken"]
    assert "ImportError: needs libfoo" in problem.message and problem.distribution == "amk-broken"


def test_selecting_a_broken_plugin_is_an_error_naming_it_and_its_cause(site):
    write_distribution(site, "amk-broken", "plug_broken", "raise ImportError('needs libfoo')", entry_name="fancy")
    with pytest.raises(PluginError, match=r"'fancy'.*failed to load: ImportError: needs libfoo"):
        build_registry().get(Ranker, "fancy")


def test_an_unknown_name_lists_the_available_ones(site):
    write_ranker_plugin(site, "amk-team-ranker", "plug_team", "team")
    with pytest.raises(UnknownNameError, match=r"no ranker named 'nope'; available rankers: .*team"):
        build_registry().get(Ranker, "nope")


def test_two_plugins_registering_one_name_are_reported_and_the_name_refused(site):
    write_ranker_plugin(site, "amk-one", "plug_one", "same")
    write_ranker_plugin(site, "amk-two", "plug_two", "same")
    registry = build_registry()
    assert any("already registered by plug_one" in p.message for p in registry.problems)
    with pytest.raises(PluginError, match=r"registered by more than one plugin .*plug_one.*plug_two"):
        registry.get(Ranker, "same")


def test_amk_plugins_shows_a_clashing_name_as_refused_with_every_provider(site, run_amk):
    write_ranker_plugin(site, "amk-one", "plug_one", "same")
    write_ranker_plugin(site, "amk-two", "plug_two", "knn")
    write_ranker_plugin(site, "amk-three", "plug_three", "same")
    env = amk_env([str(site)])
    text = run_amk("plugins", env=env).stdout
    for name, providers in (("same", ("amk-one 1.2.3", "amk-three 1.2.3")), ("knn", ("amk 0.", "amk-two 1.2.3"))):
        [row] = [line for line in text.splitlines() if line.split()[:2] == ["ranker", name]]
        assert all(p in row for p in providers) and "refused" in row and " ok" not in row, row
    rows = json.loads(run_amk("plugins", "--json", env=env).stdout)["implementations"]
    [same] = [r for r in rows if r["name"] == "same"]
    assert not same["usable"] and sorted(same["providers"]) == ["amk-one", "amk-three"]


def test_an_unknown_name_names_each_plugin_with_a_problem_once_and_not_a_clash_as_failed_to_load(site):
    write_ranker_plugin(site, "amk-one", "plug_one", "same")
    write_ranker_plugin(site, "amk-two", "plug_two", "same")
    write_distribution(site, "amk-broken", "plug_broken", "raise ImportError('needs libfoo')")
    with pytest.raises(UnknownNameError) as info:
        build_registry().get(Ranker, "nope")
    assert "failed to load" not in str(info.value) and str(info.value).count("plug_broken") == 1
    assert "plug_two" in str(info.value)


def test_a_hook_that_raises_is_reported_and_the_rest_still_load(site):
    write_distribution(site, "amk-raises", "plug_raises", """
        import amk

        @amk.hookimpl
        def register_rankers(register):
            raise RuntimeError("boom")
    """)
    registry = build_registry()
    assert any("register_rankers hook raised RuntimeError: boom" in p.message for p in registry.problems)
    assert registry.get(Store, "jsonl")


def test_an_implementation_without_attrs_options_is_refused(site):
    write_distribution(site, "amk-sloppy", "plug_sloppy", """
        import amk
        from amk.core.ranker import Ranker

        class Sloppy(Ranker):
            name = "sloppy"
            Options = dict
            fit = predict = None

        @amk.hookimpl
        def register_rankers(register):
            register(Sloppy)
    """)
    registry = build_registry()
    assert "sloppy" not in registry.names(Ranker)
    assert any("Options is not an attrs class" in p.message for p in registry.problems)


def test_an_implementation_not_derived_from_its_kind_is_refused(site):
    write_distribution(site, "amk-ducky", "plug_ducky", """
        import attrs
        import amk

        class Ducky:
            name = "ducky"

            @attrs.frozen
            class Options:
                pass

            def fit(self, X, y, groups=None):
                return self

            def predict(self, X):
                return X[:, 0]

        @amk.hookimpl
        def register_rankers(register):
            register(Ducky)
    """)
    registry = build_registry()
    assert "ducky" not in registry.names(Ranker)
    assert any("does not derive from amk.core.ranker.Ranker" in p.message for p in registry.problems)


def test_a_missing_optional_dependency_gives_an_install_hint(site):
    write_distribution(site, "amk-needy", "plug_needy", """
        import attrs
        import amk
        from amk.core.ranker import Ranker

        class Needy(Ranker):
            name = "needy"
            requires = {"surely_not_installed_module": "needy"}
            fit = predict = None

        @amk.hookimpl
        def register_rankers(register):
            register(Needy)
    """)
    with pytest.raises(MissingDependencyError, match=r"pip install 'amk-needy\[needy\]'"):  # its own distribution's extra
        build_registry().create(Ranker, "needy")
