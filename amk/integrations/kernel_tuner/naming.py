"""The workload and device of a Kernel Tuner run, named exactly as amk's Kernel Tuner importer names the
cache file that run writes (:mod:`amk.formats.kernel_tuner`), so live runs, replays and imports meet in
one corpus.

- Workload: kind ``kernel_tuner``, the kernel name, ``{"problem_size": ...}`` as the cache header holds
  it: an integer stays an integer, a tuple becomes a list, a callable problem size is ``"callable"``
  (what Kernel Tuner writes). In simulation the header of the replayed file itself is read (Kernel
  Tuner turns an integer header into a 1-tuple, which would name another workload).
- Device: ``device=`` when given, else the name Kernel Tuner reports (the GPU's; the header's in
  simulation) resolved like the importer does. A replayed cache without a device name needs ``device=``
  (the importer needs ``--device``). Kernel Tuner's C backend reports an empty name; amk then
  names this machine's CPU as its own ``cpu`` backend does (``cpu-<model>``) and says so once in a
  warning: import that run's cache file with ``amk corpus import --device`` of the same name.
"""

from __future__ import annotations

import json
import re
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

from amk.core.devices import Device, resolve_device
from amk.core.errors import AmkError, ConfigError
from amk.core.workload import Workload
from amk.formats.kernel_tuner import KERNEL_TUNER_KIND
from amk.formats.values import problem_size as imported_problem_size

from . import compat
from ._values import json_safe

_HEADER_BYTES = 1 << 18  # the header precedes the entries; this much holds it in every file seen


def written_problem_size(problem_size: Any) -> Any:
    """The problem size as Kernel Tuner writes it into a cache header, kept as the importer keeps it
    (:func:`amk.formats.values.problem_size`: integral floats as ints, a nested value as its JSON text)."""
    if callable(problem_size):
        return "callable"
    return imported_problem_size(json_safe(problem_size))


@lru_cache(maxsize=64)
def _header_problem_size(path: str, mtime_ns: int) -> tuple[bool, Any]:
    decoder = json.JSONDecoder()
    with open(path, encoding="utf-8") as f:
        head = f.read(_HEADER_BYTES)
    match = re.search(r'"problem_size"\s*:\s*', head)
    if match:
        try:
            return True, decoder.raw_decode(head, match.end())[0]
        except json.JSONDecodeError:
            pass
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return "problem_size" in data, data.get("problem_size")


def workload_of(runner: Any, tuning_options: Any) -> Workload:
    """The amk workload of the kernel ``runner`` tunes (see the module docstring)."""
    options = runner.kernel_options
    problem_size = written_problem_size(options.problem_size)
    cachefile = getattr(tuning_options, "cachefile", None)
    if getattr(runner, "simulation_mode", False) and cachefile and Path(cachefile).is_file():
        found, header_value = _header_problem_size(str(cachefile), Path(cachefile).stat().st_mtime_ns)
        if found:
            problem_size = imported_problem_size(header_value)
    shape = {} if problem_size is None else {"problem_size": problem_size}
    try:
        return Workload(KERNEL_TUNER_KIND, str(options.kernel_name), shape)
    except AmkError as exc:  # a problem size the corpus cannot hold (e.g. strings in a tuple)
        raise ConfigError(
            f"Kernel Tuner's kernel {options.kernel_name!r} with problem_size {options.problem_size!r} "
            f"cannot name an amk workload ({exc}); give the problem size as integers."
        ) from None


@lru_cache(maxsize=1)
def _this_cpu() -> Device:
    from amk.backends.cpu import local_cpu_device

    return local_cpu_device()


def device_of(runner: Any, override: str | Device | None = None) -> Device:
    """The amk device of ``runner`` (see the module docstring)."""
    if isinstance(override, Device):
        return override
    if override:
        return resolve_device(str(override))
    reported = compat.device_name(runner)
    if reported:
        return resolve_device(reported)
    if getattr(runner, "simulation_mode", False):
        raise ConfigError("the replayed cache's device_name is empty; pass device=NAME to say which device it "
                          "was measured on (as 'amk corpus import --device NAME' does).")
    cpu = _this_cpu()
    warnings.warn(
        f"Kernel Tuner reports no device name (its C backend); amk records this machine's CPU as "
        f"{cpu.name!r}. Pass device=... to name it otherwise, and import this run's cache file with "
        f"'amk corpus import --device {cpu.name}'.", UserWarning, stacklevel=2)
    return cpu
