"""T1 input files: a kernel, its problem size and its search space, in the autotuning community's format.

A T1 file holds no measurements; amk reads it for the T4 results of its kernel (``--t1 FILE``, or the one
T1 file beside a T4 file). Parameter values are Python text in the format (``"[16, 32, 64]"``,
``"range(1, 33)"``): amk reads literals and ``range``/``list(range(...))`` calls, and evaluates nothing else.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from amk.core.errors import ImportFormatError
from amk.formats import ImportItem, ImportOptions
from amk.formats.source import Source
from amk.formats.values import note, problem_size


@attrs.frozen
class KernelSpace:
    """What a T1 file says of a kernel: its name, problem size, and each parameter's values and default."""

    kernel: str
    problem_size: Any
    values: dict[str, list[Any]]  # in the file's parameter order
    defaults: dict[str, Any]
    device: str | None
    source: Path


def looks_like_t1(source: Source) -> bool:
    """True when the file is a JSON object with T1's ``ConfigurationSpace`` and ``KernelSpecification``."""
    fields = source.document().fields
    return "ConfigurationSpace" in fields and "KernelSpecification" in fields


def _values(text: Any, name: str, path: Path) -> list[Any]:
    if isinstance(text, list):
        return text
    if not isinstance(text, str):
        raise ImportFormatError(f"{path}: the Values of parameter {name!r} must be a list or its text, got {text!r}.")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        tree = ast.parse(text, mode="eval").body if text.strip() else None
        if isinstance(tree, ast.Call) and getattr(tree.func, "id", "") == "list" and len(tree.args) == 1:
            tree = tree.args[0]
        if not (isinstance(tree, ast.Call) and getattr(tree.func, "id", "") == "range" and not tree.keywords):
            raise ImportFormatError(f"{path}: the Values of parameter {name!r} ({text!r}) are neither a list "
                                    "literal nor range(...); amk evaluates nothing else.") from None
        try:
            value = range(*(ast.literal_eval(a) for a in tree.args))
        except (ValueError, TypeError) as exc:
            raise ImportFormatError(f"{path}: the Values of parameter {name!r} ({text!r}): {exc}.") from None
    if isinstance(value, (int, float, str)):
        value = [value]
    return list(value)


def read_kernel_space(path: Path) -> KernelSpace:
    """The kernel, problem size and search space of the T1 file ``path``; ImportFormatError when it is none."""
    try:
        data = json.loads(Source(path).text())
    except ValueError as exc:
        raise ImportFormatError(f"{path}: not valid JSON ({exc}); give a T1 input file.") from None
    spec = data.get("KernelSpecification") if isinstance(data, dict) else None
    space = data.get("ConfigurationSpace") if isinstance(data, dict) else None
    if not isinstance(spec, dict) or not isinstance(space, dict):
        raise ImportFormatError(f"{path}: not a T1 input file (it needs KernelSpecification and ConfigurationSpace).")
    name = spec.get("KernelName")
    if not isinstance(name, str) or not name:
        raise ImportFormatError(f"{path}: KernelSpecification.KernelName must name the kernel.")
    values, defaults = {}, {}
    for parameter in space.get("TuningParameters") or []:
        pname = parameter.get("Name") if isinstance(parameter, dict) else None
        if not isinstance(pname, str):
            raise ImportFormatError(f"{path}: every TuningParameters item needs a Name, got {parameter!r}.")
        values[pname] = _values(parameter.get("Values"), pname, path)
        if "Default" in parameter:
            defaults[pname] = parameter["Default"]
    device = spec.get("Device", {}).get("Name") if isinstance(spec.get("Device"), dict) else None
    size = spec.get("ProblemSize")
    return KernelSpace(name, problem_size(size) if size is not None else None, values, defaults, device, path)


def read_t1(source: Source, options: ImportOptions) -> Iterator[ImportItem]:
    """No records: a note that says what the file describes and how amk uses it."""
    space = read_kernel_space(source.path)
    yield note(str(source.path), f"a T1 input file (kernel {space.kernel!r}, {len(space.values)} parameters): no "
                                 "measurements to import; amk reads it for the T4 results of that kernel (--t1, or "
                                 "the one T1 file beside a T4 file)")
