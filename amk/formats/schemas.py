"""The JSON schemas Kernel Tuner ships (T4 results, versioned caches), found in the installed package.

amk does not copy them: ``kernel_tuner_schema`` reads ``kernel_tuner/schema/<kind>/<version>/<file>`` from
the installed kernel_tuner (``pip install amk[kernel-tuner]``) without importing it, and
``schema_errors`` checks a document with jsonschema (Draft 2020-12, the schemas' own draft).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from amk.core.errors import MissingDependencyError

INSTALL_HINT = "install amk[kernel-tuner] (kernel_tuner ships the schema, jsonschema checks it)"


def kernel_tuner_dir() -> Path:
    """The installed kernel_tuner package's folder; MissingDependencyError when it is not installed."""
    spec = importlib.util.find_spec("kernel_tuner")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"kernel_tuner is not installed; {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def kernel_tuner_schema(kind: str, version: str, filename: str) -> dict[str, Any] | None:
    """The schema ``kind``/``version``/``filename`` the installed kernel_tuner ships, None when it ships none."""
    path = kernel_tuner_dir() / "schema" / kind / version / filename
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def schema_errors(schema: dict[str, Any], document: Any, limit: int = 50) -> list[tuple[tuple, str]]:
    """(path in the document, message) of each way ``document`` breaks ``schema`` (at most ``limit``)."""
    try:
        import jsonschema
    except ImportError:
        raise MissingDependencyError(f"jsonschema is not installed; {INSTALL_HINT}") from None
    validator = jsonschema.Draft202012Validator(schema)
    errors = []
    for error in validator.iter_errors(document):
        errors.append((tuple(error.absolute_path), error.message))
        if len(errors) >= limit:
            break
    return errors
