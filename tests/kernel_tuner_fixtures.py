"""The kernel_tuner fixture: Kernel Tuner imported once per session (it takes seconds: it imports torch).

Load with ``pytest_plugins = ["kernel_tuner_fixtures"]``.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def kernel_tuner():
    """The kernel_tuner module; AMK_EXPECT_KERNEL_TUNER=X.Y.Z (set by .ci/run's run on the oldest supported
    version) makes a different version a failure, so that run cannot test the newest by mistake."""
    module = pytest.importorskip("kernel_tuner", reason="kernel_tuner is not installed (pip install 'amk[kernel-tuner]')")
    expected = os.environ.get("AMK_EXPECT_KERNEL_TUNER")
    if expected:
        assert module.__version__ == expected, f"testing kernel_tuner {module.__version__}, expected {expected}"
    return module
