"""Every "## Example:" of docs/tune.md runs as written, in a fresh directory: its files are written (a code
block whose info string names a file), its bash block or Python block is run, and run again to show the
second run warm-started by the first."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, amk_env

DOC = (REPO_ROOT / "docs" / "tune.md").read_text()
SECTIONS = {title.strip(): body for title, body in re.findall(r"\n## Example: (.*?)\n(.*?)(?=\n## |\Z)", DOC, flags=re.DOTALL)}
BLOCK = re.compile(r"```(\w+)(?: ([\w.\-]+))?\n(.*?)```", flags=re.DOTALL)


def test_the_doc_has_an_example_of_each_way_to_tune_any_program():
    assert sorted(SECTIONS) == sorted(["the `command` backend", "`amk.tune`", "Optuna"])


def _prepare(section: str, tmp_path: Path) -> list[tuple[str, str]]:
    """Writes the section's files into ``tmp_path``; returns its blocks to run (language, code)."""
    runs = []
    for language, name, code in BLOCK.findall(SECTIONS[section]):
        if name:
            (tmp_path / name).write_text(code)
        else:
            runs.append((language, code))
    return runs


def _env(tmp_path: Path) -> dict[str, str]:
    """This checkout's amk, with an ``amk`` command on PATH that runs it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "amk"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m amk "$@"\n')
    shim.chmod(0o755)
    env = amk_env()
    env["PATH"] = f"{bin_dir}:{env.get('PATH', '')}"
    return env


def _run(language: str, code: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    if language == "bash":
        args = ["bash", "-e", "-c", code]
    else:
        script = cwd / "example.py"
        script.write_text(code)
        args = [sys.executable, str(script)]
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=240, check=False)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="the example builds its program with gcc")
def test_the_command_backend_example_tunes_its_program_and_its_second_run_is_warm_started(tmp_path):
    ((language, code),) = _prepare("the `command` backend", tmp_path)
    out = _run(language, code, tmp_path, _env(tmp_path))
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.split("blocked-sum on ")[1:]
    assert "6 evaluations" in first and "verdicts: PASS 6" in first
    records = [json.loads(line) for line in (tmp_path / ".amk" / "corpus.jsonl").read_text().splitlines()]
    first_run = records[0]["provenance"]["extra"]["run"]
    assert "2 evaluations" in second and f"warm start: amk tune {first_run} " in second
    assert {r["device"]["name"] for r in records} == {records[0]["device"]["name"]}  # --device local, detected


@pytest.mark.parametrize("section", ["`amk.tune`", "Optuna"])
def test_the_python_example_runs_and_a_second_run_is_warm_started_by_the_first(section, tmp_path):
    ((language, code),) = _prepare(section, tmp_path)
    env = _env(tmp_path)
    first = _run(language, code, tmp_path, env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("best ") or "warm start: 0 trials" in first.stdout
    second = _run(language, code, tmp_path, env)
    assert second.returncode == 0, second.stderr
    if section == "Optuna":
        added = int(re.search(r"warm start: (\d+) trials from the corpus", second.stdout).group(1))
        assert added > 0 and "best " in second.stdout
    else:
        assert "warm start: amk tune " in second.stdout
