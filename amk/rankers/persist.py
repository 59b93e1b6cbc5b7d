"""How a fitted ranker is saved: a directory with ``model.json`` (name, options, scalars) and ``arrays.npz``.

Both are data only: the JSON is parsed, the arrays are read with ``allow_pickle=False``, and nothing in
either file can make loading run code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from amk.core.errors import ModelFileError

MODEL_FILE = "model.json"
ARRAYS_FILE = "arrays.npz"
FORMAT_VERSION = 1



def write_model(path: str | os.PathLike, name: str, options: Any, state: Mapping[str, Any],
                arrays: Mapping[str, np.ndarray] | None = None) -> None:
    """Write a fitted model's options, JSON-ready ``state`` and numeric ``arrays`` under ``path``."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"format": FORMAT_VERSION, "ranker": name, "options": attrs.asdict(options), "state": dict(state)}
    (folder / MODEL_FILE).write_text(json.dumps(doc, indent=1, allow_nan=False))
    if arrays:
        np.savez(folder / ARRAYS_FILE, **{k: np.asarray(v) for k, v in arrays.items()})


def read_model(path: str | os.PathLike, name: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    """(options, state, arrays) of the model saved under ``path``, which must be a ``name`` ranker's."""
    folder = Path(path)
    try:
        doc = json.loads((folder / MODEL_FILE).read_text())
    except FileNotFoundError:
        raise ModelFileError(f"{folder}: no {MODEL_FILE}; is it a directory a ranker was saved to?") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{folder / MODEL_FILE}: cannot be read ({exc}); save the model again.") from None
    if doc.get("format") != FORMAT_VERSION or doc.get("ranker") != name:
        raise ModelFileError(
            f"{folder}: holds a {doc.get('ranker')!r} model (format {doc.get('format')!r}), not a {name!r} one "
            f"(format {FORMAT_VERSION}); load it with the ranker that saved it."
        )
    arrays: dict[str, np.ndarray] = {}
    if (folder / ARRAYS_FILE).exists():
        with np.load(folder / ARRAYS_FILE, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    return doc["options"], doc["state"], arrays
