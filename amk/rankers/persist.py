"""How a fitted ranker is saved: a directory with ``model.json`` (name, options, scalars) and ``arrays.npz``
(plus any file of the ranker's own, such as LightGBM's text model).

Each file is written to a new temporary file and renamed into place (``amk.io.files``), and
``model.json`` comes last, holding the SHA-256 of every other file: a save interrupted at any point, a
truncated or changed file, is found before any of it is parsed (a ModelFileError that says to save the
model again), never loaded as a model. Everything is data only: the JSON is parsed, the arrays are read
with ``allow_pickle=False``, and nothing in any file can make loading run code.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from amk.core.errors import ModelFileError, ValidationError
from amk.core.inputs import parse_json
from amk.io.files import write_atomically

MODEL_FILE = "model.json"
ARRAYS_FILE = "arrays.npz"
FORMAT_VERSION = 2  # 2: the SHA-256 of each file in model.json ("files")
_READABLE_FORMATS = (1, 2)


def write_model(path: str | os.PathLike, name: str, options: Any, state: Mapping[str, Any],
                arrays: Mapping[str, np.ndarray] | None = None, files: Mapping[str, bytes] | None = None) -> None:
    """Write a fitted model's options, JSON-ready ``state``, numeric ``arrays`` and the ranker's own ``files``
    (name -> bytes) under ``path``; FileWriteError when the disk is full or the directory read-only."""
    folder = Path(path)
    payload = dict(files or {})
    if arrays:
        buffer = io.BytesIO()
        np.savez(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
        payload[ARRAYS_FILE] = buffer.getvalue()
    for filename, data in payload.items():
        write_atomically(folder / filename, data, "the model file")
    doc = {"format": FORMAT_VERSION, "ranker": name, "options": attrs.asdict(options), "state": dict(state),
           "files": {filename: hashlib.sha256(data).hexdigest() for filename, data in payload.items()}}
    import json

    write_atomically(folder / MODEL_FILE, json.dumps(doc, indent=1, allow_nan=False), "the model file")


def _manifest(folder: Path, name: str) -> dict[str, Any]:
    try:
        doc = parse_json((folder / MODEL_FILE).read_bytes(), max_bytes=None)
    except FileNotFoundError:
        raise ModelFileError(f"{folder}: no {MODEL_FILE}; is it a directory a ranker was saved to?") from None
    except (OSError, ValidationError) as exc:
        raise ModelFileError(f"{folder / MODEL_FILE}: cannot be read ({exc}); save the model again.") from None
    if not isinstance(doc, dict) or doc.get("format") not in _READABLE_FORMATS or doc.get("ranker") != name:
        got = (doc.get("ranker"), doc.get("format")) if isinstance(doc, dict) else (None, None)
        raise ModelFileError(
            f"{folder}: holds a {got[0]!r} model (format {got[1]!r}), not a {name!r} one "
            f"(format {FORMAT_VERSION}); load it with the ranker that saved it."
        )
    if not isinstance(doc.get("options"), dict) or not isinstance(doc.get("state"), dict) \
            or not isinstance(doc.get("files", {}), dict):
        raise ModelFileError(f"{folder / MODEL_FILE}: is not a model description amk wrote; save the model again.")
    return doc


def _verified(folder: Path, doc: Mapping[str, Any], filename: str) -> bytes | None:
    """The bytes of ``filename`` when they are those ``model.json`` was saved with (None: no such file)."""
    expected = doc.get("files", {}).get(filename)
    try:
        data = (folder / filename).read_bytes()
    except FileNotFoundError:
        if expected is not None:
            raise ModelFileError(f"{folder / filename}: is missing (an interrupted save?); save the model again.") \
                from None
        return None
    except OSError as exc:
        raise ModelFileError(f"{folder / filename}: cannot be read ({exc.strerror}); check its permissions.") from None
    if expected is None and doc.get("format") != 1:
        raise ModelFileError(f"{folder / filename}: is not part of the saved model; save the model again.")
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise ModelFileError(f"{folder / filename}: is damaged (it is not the file that was saved: a truncated or "
                             "interrupted save, or a changed file); save the model again.")
    return data


def read_model(path: str | os.PathLike, name: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    """(options, state, arrays) of the model saved under ``path``, which must be a ``name`` ranker's, every file
    checked against its saved SHA-256 first (ModelFileError: damaged, missing, or another ranker's)."""
    folder = Path(path)
    doc = _manifest(folder, name)
    arrays: dict[str, np.ndarray] = {}
    data = _verified(folder, doc, ARRAYS_FILE)
    if data is not None:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise ModelFileError(f"{folder / ARRAYS_FILE}: cannot be read ({exc}); save the model again.") from None
    return doc["options"], doc["state"], arrays


def read_model_file(path: str | os.PathLike, name: str, filename: str) -> bytes:
    """The bytes of a ranker's own file (``write_model``'s ``files``), checked against its saved SHA-256."""
    folder = Path(path)
    data = _verified(folder, _manifest(folder, name), filename)
    if data is None:
        raise ModelFileError(f"{folder / filename}: is missing (an interrupted save?); save the model again.")
    return data
