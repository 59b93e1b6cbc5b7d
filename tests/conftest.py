"""Fixtures shared by the whole suite: the real data beside the checkout and a way to run the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# ../shared/data is the workplace's real data, beside the checkout; it is not part of the project.
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def pytest_configure(config: pytest.Config) -> None:
    """Nothing the suite measures or caches lands outside temporary folders: amk's cache (the measured
    bandwidth) and matplotlib's go to a folder of this session (of each xdist worker). Compiled kernels
    stay where this machine keeps them (``$AMK_BUILD_DIR``, else amk's usual cache): they are built once
    (CI builds the cpu kernel with ``amk doctor --require cpu`` before the suite) and loaded by every
    session. Subprocesses (``run_amk``) inherit the same environment."""
    from amk.backends.cache_dir import BUILD_ENV_VAR, CACHE_ENV_VAR, kernel_cache_root

    os.environ.setdefault(BUILD_ENV_VAR, str(kernel_cache_root()))
    session = Path(tempfile.mkdtemp(prefix="amk-test-cache-"))
    config.add_cleanup(lambda: shutil.rmtree(session, ignore_errors=True))
    os.environ[CACHE_ENV_VAR] = str(session / "amk")
    os.environ["MPLCONFIGDIR"] = str(session / "matplotlib")
    try:  # hypothesis keeps found examples in ./.hypothesis by default
        from hypothesis import settings
    except ImportError:
        return
    settings.register_profile("amk-suite", database=None)
    settings.load_profile("amk-suite")


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
