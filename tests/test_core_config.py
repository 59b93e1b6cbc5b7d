import os
import sys
from pathlib import Path

import pytest
from plugin_helpers import write_ranker_plugin

from amk.core.config import DEFAULT_ORIGIN, load_config
from amk.core.errors import ConfigError
from amk.core.kinds import KINDS
from amk.core.plugins import build_registry
from amk.core.ranker import Ranker


@pytest.fixture
def registry(tmp_path, monkeypatch):
    site = tmp_path / "site"
    write_ranker_plugin(site, "amk-team-ranker", "plug_cfg_team", "team")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("AMK_CONFIG", raising=False)
    yield build_registry()
    sys.modules.pop("plug_cfg_team", None)


@pytest.fixture
def project(tmp_path) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    return path


def test_with_no_config_the_embedded_defaults_are_used(project, registry):
    config = load_config(cwd=project, registry=registry)
    assert config.path is None
    assert {k.name: config.selection(k.name).name for k in KINDS} == {
        "store": "jsonl", "featurizer": "amk", "ranker": "knn", "backend": "roofline"}
    assert config.selection("ranker").origins["name"] == DEFAULT_ORIGIN
    assert config.options("store").path == str(project / ".amk" / "corpus.jsonl")


def test_amk_toml_selects_implementations_and_options(project, registry):
    (project / "amk.toml").write_text('[ranker]\nname = "team"\nscale = 2.5\n')
    config = load_config(cwd=project, registry=registry)
    assert config.selection("ranker").name == "team"
    assert config.options("ranker").scale == 2.5
    assert config.create(Ranker).options.scale == 2.5
    assert config.selection("ranker").origins["scale"] == str(project / "amk.toml")


def test_tool_amk_in_pyproject_is_read_when_there_is_no_amk_toml(project, registry):
    (project / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.amk.ranker]\nname = "team"\n')
    assert load_config(cwd=project, registry=registry).selection("ranker").name == "team"


def test_amk_config_env_wins_over_amk_toml_and_config_flag_wins_over_both(project, registry, monkeypatch, tmp_path):
    (project / "amk.toml").write_text('[ranker]\nname = "team"\nscale = 1.0\n')
    env_file = tmp_path / "env.toml"
    env_file.write_text('[ranker]\nname = "team"\nscale = 2.0\n')
    flag_file = tmp_path / "flag.toml"
    flag_file.write_text('[ranker]\nname = "team"\nscale = 3.0\n')
    monkeypatch.setenv("AMK_CONFIG", str(env_file))
    assert load_config(cwd=project, registry=registry).options("ranker").scale == 2.0
    assert load_config(flag_file, cwd=project, registry=registry).options("ranker").scale == 3.0


def test_an_unknown_ranker_is_an_error_listing_the_available_ones(project, registry):
    (project / "amk.toml").write_text('[ranker]\nname = "magic"\n')
    with pytest.raises(ConfigError, match=r"amk.toml: \[ranker\] no ranker named 'magic'; available rankers: .*team"):
        load_config(cwd=project, registry=registry)


def test_an_unknown_option_names_the_file_the_key_and_the_allowed_keys(project, registry):
    (project / "amk.toml").write_text('[ranker]\nname = "team"\nscael = 2\n')
    with pytest.raises(ConfigError, match=r"amk.toml: unknown key\(s\) \['scael'\] for \[ranker\] 'team'; allowed keys are \['scale'\]"):
        load_config(cwd=project, registry=registry)  # when the file is read, whether or not a command ranks


def test_a_badly_typed_option_is_an_error_naming_it(project, registry):
    (project / "amk.toml").write_text('[ranker]\nname = "team"\nscale = "lots"\n')
    with pytest.raises(ConfigError, match="amk.toml: .*scale"):
        load_config(cwd=project, registry=registry)


def test_a_bad_option_of_the_default_implementation_names_the_file_not_the_defaults(project, registry):
    (project / "amk.toml").write_text('[ranker]\nk = 0\n')
    with pytest.raises(ConfigError, match=r"amk.toml: 'k' must be >= 1: 0 @ \[ranker\] 'knn'"):
        load_config(cwd=project, registry=registry)


def test_an_unknown_section_is_an_error_listing_the_allowed_ones(project, registry):
    (project / "amk.toml").write_text('[rankers]\nname = "team"\n')
    with pytest.raises(ConfigError, match=r"unknown section\(s\) \['rankers'\]; allowed sections are \['store', 'featurizer', 'ranker', 'backend'"):
        load_config(cwd=project, registry=registry)


def test_invalid_toml_names_the_file(project, registry):
    (project / "amk.toml").write_text("[ranker\n")
    with pytest.raises(ConfigError, match="amk.toml: not valid TOML"):
        load_config(cwd=project, registry=registry)


def test_a_missing_config_file_is_a_clear_error(project, registry):
    with pytest.raises(ConfigError, match="'.*nope.toml' given by --config is missing or a directory"):
        load_config(project / "nope.toml", cwd=project, registry=registry)
    with pytest.raises(ConfigError, match="given by --config is missing or a directory"):
        load_config(project, cwd=project, registry=registry)


def test_a_config_given_as_a_pipe_or_dev_null_is_read(project, registry):
    empty = load_config("/dev/null", cwd=project, registry=registry)
    assert empty.selection("ranker").name == "knn"
    assert empty.options("store").path == str(project / ".amk" / "corpus.jsonl")  # not /dev/.amk/corpus.jsonl
    read, write = os.pipe()
    os.write(write, b'[ranker]\nk = 7\n[store]\nurl = "jsonl:data/c.jsonl"\n')
    os.close(write)
    try:
        config = load_config(f"/dev/fd/{read}", cwd=project, registry=registry)
    finally:
        os.close(read)
    assert config.options("ranker").k == 7
    assert config.options("store").path == str(project / "data" / "c.jsonl")  # relative to where amk runs


def test_a_store_url_selects_the_store_and_its_path_relative_to_the_file(project, registry):
    (project / "amk.toml").write_text('[store]\nurl = "jsonl:data/corpus.jsonl"\n')
    config = load_config(cwd=project, registry=registry)
    assert config.selection("store").name == "jsonl"
    assert config.options("store").path == str(project / "data" / "corpus.jsonl")


def test_a_store_url_with_an_unknown_scheme_lists_the_known_ones(project, registry):
    (project / "amk.toml").write_text('[store]\nurl = "mongo://x"\n')
    with pytest.raises(ConfigError, match=r"amk.toml: \[store\] store URL 'mongo://x' has no known scheme; use one of .*'jsonl:'"):
        load_config(cwd=project, registry=registry)


def test_a_store_url_that_names_no_file_names_the_config_file(project, registry):
    (project / "amk.toml").write_text('[store]\nurl = "jsonl:"\n')
    with pytest.raises(ConfigError, match=r"amk.toml: \[store\] store URL 'jsonl:' names no file"):
        load_config(cwd=project, registry=registry)


@pytest.mark.parametrize(("path", "url"), [("data/corpus.jsonl", "jsonl:data/corpus.jsonl"),
                                         ("corpus.sqlite", "sqlite:corpus.sqlite")])
def test_a_bare_path_as_store_url_is_told_the_url_it_likely_means(project, registry, path, url):
    (project / "amk.toml").write_text(f'[store]\nurl = "{path}"\n')
    with pytest.raises(ConfigError, match=rf"no known scheme; .*\(for the file '{path}': {url}\)"):
        load_config(cwd=project, registry=registry)


def test_the_command_line_store_overrides_the_config(project, registry):
    config = load_config(cwd=project, registry=registry).with_store_url("jsonl:/tmp/x.jsonl", origin="--store")
    assert config.options("store").path == "/tmp/x.jsonl"
    assert config.selection("store").origins["name"] == "--store"
