"""Fixtures shared by the whole suite: the real data beside the checkout and a way to run the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# ../shared/data is the workplace's real data, beside the checkout; it is not part of the project.
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real corpora and Kernel Tuner caches in ../shared/data; skips (saying why) without them."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the real data in {SHARED_DATA} (the shared folder beside the checkout), which is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def upstream_corpus(shared_data: Path) -> Path:
    path = shared_data / "amk_upstream" / "corpus.jsonl"
    if not path.is_file():
        pytest.skip(f"needs the original system's corpus at {path}, which is absent")
    return path


def amk_env(extra_pythonpath: list[str] | None = None, **overrides: str) -> dict[str, str]:
    """An environment that runs this checkout's amk, with no config file inherited from the caller."""
    env = {k: v for k, v in os.environ.items() if k != "AMK_CONFIG"}
    paths = [str(REPO_ROOT), *(extra_pythonpath or [])]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(overrides)
    return env


@pytest.fixture
def run_amk(tmp_path: Path):
    """Run ``python -m amk ARGS`` in a fresh directory (``tmp_path`` unless ``cwd`` is given)."""

    def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            input: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "amk", *args], cwd=cwd or tmp_path, env=env or amk_env(),
            capture_output=True, text=True, input=input, timeout=timeout,
        )

    return run
