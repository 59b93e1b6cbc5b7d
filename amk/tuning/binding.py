"""What a tune run is bound to: the inputs its recorded trials mean something only with.

A state file is found by its target (workload, device and backend), but its trials also depend on the
store its records went to (a resumed run takes back from it what the state missed, and reports a best the
store must hold), the search space (trials and the random picks index its candidates, in order) and what
a latency means (the backend's version, measurement kind, unit and options that change a latency). The
state keeps them as a :class:`RunBinding`; ``--resume`` / ``resume=True`` against other inputs is refused
by :func:`check_binding` with what differs and what to do, never continued silently.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import attrs

from amk.core.errors import LeftOutWarning, TuneStateError
from amk.core.store import Store
from amk.io.files import file_identity


@attrs.define
class RunBinding:
    """The inputs a run's trials were measured with (see the module docstring); JSON-safe values."""

    store: str | None  # the store as it describes itself (None: the run has no store), for messages
    store_identity: Any  # Store.identity() as JSON (its description where it cannot tell), None without a store
    space: dict[str, Any]  # {"knobs": {name: {"choices": [...], "default": ...}}, "restrictions": [text, ...]}
    candidates: str  # "<count> configs, sha256 <digest>" of the candidate keys in order
    backend: str  # "<name> <version>"
    measurement: dict[str, Any]  # {"kind": ..., "unit": ... (when the backend has one), "options": {...}}
    store_file: str | None = None  # the resolved path of a store kept in one file (None: a server, memory)

    def check(self) -> None:
        """TypeError naming the first part (``$.bound...``) that a binding amk wrote could not hold: what
        :func:`differences` reads is mappings and lists of the shapes above (a state file edited by hand)."""
        knobs = _field(self.space, "knobs", dict, "$.bound.space")
        for name, knob in knobs.items():
            if not isinstance(knob, dict) or not isinstance(knob.get("choices", []), list):
                raise TypeError(f"$.bound.space.knobs[{name!r}] is not a knob ({{\"choices\": [...], \"default\": ...}})")
        restrictions = _field(self.space, "restrictions", list, "$.bound.space")
        if not all(isinstance(text, str) for text in restrictions):
            raise TypeError("$.bound.space.restrictions is not a list of texts")
        _field(self.measurement, "options", dict, "$.bound.measurement")


def _field(mapping: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = mapping.get(key, kind())
    if not isinstance(value, kind):
        raise TypeError(f"{where}.{key} is {json.dumps(value)[:40]}, not a JSON {'object' if kind is dict else 'array'}")
    return value


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=repr))


def store_identity(store: Store | None) -> Any:
    """``store.identity()`` as JSON (a file's device and inode, a database's id), its ``describe()`` when the
    store cannot tell; None without a store."""
    if store is None:
        return None
    identity = store.identity()
    return _json_safe(identity if identity is not None else ("described", store.describe()))


def _space_of(space: Any) -> dict[str, Any]:
    knobs = {k.name: {"choices": list(k.choices), "default": k.default} for k in space.knobs}
    return _json_safe({"knobs": knobs, "restrictions": list(space.constraint_texts)})


def _measurement_of(backend: Any) -> dict[str, Any]:
    options = backend.options
    options = attrs.asdict(options) if attrs.has(type(options)) else {}
    out: dict[str, Any] = {"kind": backend.measurement_kind.value}
    unit = getattr(backend, "unit", None)  # the objective backend's (the command backend's is an option)
    if isinstance(unit, str):
        out["unit"] = unit
    # A backend's ``resumable_options`` (a class attribute, e.g. the command backend's timeout_s) change how
    # long a measurement may take, not the latency it reports: a resumed run may change them.
    free = getattr(backend, "resumable_options", frozenset())
    out["options"] = {k: _file_or_value(v) for k, v in options.items() if k not in free}
    return _json_safe(out)


def _file_or_value(value: Any) -> Any:
    """An option that names an existing file (a replay cache) as its resolved path, so ``A100.json`` and
    ``/abs/A100.json`` are one input; any other value as it is."""
    if isinstance(value, str) and value and os.path.isfile(value):
        return os.path.realpath(value)
    return value


def binding_of(target: Any, store: Store | None) -> RunBinding:
    """The binding of a run of ``target`` (a :class:`~amk.tuning.target.TuneTarget`) appending to ``store``."""
    digest = hashlib.sha256("\n".join(target.keys).encode()).hexdigest()[:16]
    return RunBinding(
        store=store.describe() if store is not None else None, store_identity=store_identity(store),
        store_file=_store_file(store),
        space=_space_of(target.space), candidates=f"{len(target.keys)} configs, sha256 {digest}",
        backend=f"{target.backend.name} {target.backend.version}", measurement=_measurement_of(target.backend))


def _store_file(store: Store | None) -> str | None:
    path = getattr(getattr(store, "options", None), "path", None)
    return os.path.realpath(path) if isinstance(path, str) else None


def _same_store(old: RunBinding, new: RunBinding) -> bool:
    """Whether two bindings name one store: equal identities; or ``old``'s was a file not yet created (its
    path) that is the file ``new``'s names now (a run whose first record created the file); or both are the
    file at one resolved path (``corpus migrate`` rewrites a file under a new inode)."""
    if old.store_identity == new.store_identity or (old.store_file is not None and old.store_file == new.store_file):
        return True
    identity = old.store_identity
    return (isinstance(identity, list) and len(identity) == 2 and identity[0] == "path" and isinstance(identity[1], str)
            and _json_safe(file_identity(identity[1])) == new.store_identity)


def _words(value: Any) -> str:
    return json.dumps(value)


def differences(old: RunBinding, new: RunBinding) -> list[str]:
    """What differs between the run's binding and this call's, one plain sentence each (empty: none)."""
    out = []
    if not _same_store(old, new):
        same_name = " (the same name, another store: a relative path from another directory?)" \
            if old.store == new.store else ""
        out.append(f"the store: the run's records are in {old.store or 'no store'}, this call's store is "
                   f"{new.store or 'none'}{same_name}")
    old_knobs, new_knobs = old.space.get("knobs", {}), new.space.get("knobs", {})
    for name in old_knobs.keys() - new_knobs.keys():
        out.append(f"the search space: knob {name!r} was tuned and is not in it now")
    for name in new_knobs.keys() - old_knobs.keys():
        out.append(f"the search space: knob {name!r} is new")
    for name in old_knobs.keys() & new_knobs.keys():
        for what, verb in (("choices", "were"), ("default", "was")):
            if old_knobs[name].get(what) != new_knobs[name].get(what):
                out.append(f"the search space: knob {name!r} {what} {verb} {_words(old_knobs[name].get(what))}, "
                           f"now {_words(new_knobs[name].get(what))}")
    if list(old_knobs) != list(new_knobs) and old_knobs.keys() == new_knobs.keys():
        out.append(f"the search space: the knobs' order was {list(old_knobs)}, now {list(new_knobs)}")
    old_r, new_r = old.space.get("restrictions", []), new.space.get("restrictions", [])
    for text in old_r:
        if text not in new_r:
            out.append(f"the search space: restriction {text!r} was given and is not now")
    for text in new_r:
        if text not in old_r:
            out.append(f"the search space: restriction {text!r} is new")
    if not out and old.candidates != new.candidates:
        out.append(f"the search space's configs: {old.candidates} then, {new.candidates} now (a callable "
                   "restriction, the backend's space or [tune] max_candidates changed)")
    if old.backend != new.backend:
        out.append(f"the backend: {old.backend} then, {new.backend} now")
    for key in ("kind", "unit"):
        if old.measurement.get(key) != new.measurement.get(key):
            what = "measurement kind" if key == "kind" else "unit"
            out.append(f"the {what}: {old.measurement.get(key)!r} then, {new.measurement.get(key)!r} now")
    old_o, new_o = old.measurement.get("options", {}), new.measurement.get("options", {})
    for key in sorted(old_o.keys() | new_o.keys()):
        if old_o.get(key) != new_o.get(key) and _file_or_value(old_o.get(key)) != new_o.get(key):
            out.append(f"the backend option {key}: {_words(old_o.get(key))} then, {_words(new_o.get(key))} now")
    return out


def check_binding(bound: RunBinding | None, current: RunBinding, path: Path) -> None:
    """Refuse (TuneStateError) to resume the run of the state at ``path`` with other inputs than it was bound
    to, saying each difference and what to do. A state without a binding (written by amk before it kept
    one) is resumed with a LeftOutWarning that this was not checked."""
    if bound is None:
        warnings.warn(f"the tune state {path} predates the record of the store and search space a run is bound "
                      "to, so resuming it against other ones was not checked", LeftOutWarning, stacklevel=3)
        return
    found = differences(bound, current)
    if found:
        raise TuneStateError(
            f"the tune state {path} belongs to a run with other inputs, whose trials would mean nothing here: "
            + "; ".join(found) + ". Resume with the run's own store, search space and backend settings, or start "
            "a new run without --resume (resume=False in amk.tune; it replaces this state).")
