"""Devices: a name plus the public specs that let tuning knowledge transfer between GPUs.

``resolve_device("NVIDIA H100 80GB HBM3")`` gives the registry's ``h100``; a device the registry does not
know still resolves, to a normalised name with unknown (None) specs.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from amk.core.errors import ValidationError
from amk.core.inputs import MAX_INT, check_text

VENDOR_WORDS = frozenset({"nvidia", "geforce", "tesla", "quadro", "corporation"})
# Words that describe a board variant (memory size, form factor) rather than the chip.
VARIANT_WORD = re.compile(r"^(\d+gb|hbm\d?e?|pcie|sxm\d?|nvl|gddr\d+x?|\d+g)$")


def _optional_positive(instance: Any, attribute: attrs.Attribute, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_INT:
        raise ValidationError(f"Device.{attribute.name}={value!r} must be a positive number (or None if unknown).")


def _non_empty_name(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"a device name must be a non-empty string, got {value!r}.")
    check_text(value, "the device name")


def _optional_text(instance: Any, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and not isinstance(value, str):
        raise ValidationError(f"Device.{attribute.name}={value!r} must be a string (or None if unknown).")
    check_text(value or "", f"Device.{attribute.name}")


@attrs.frozen
class Device:
    """A GPU (or CPU) and the specs amk knows of it; None means unknown."""

    name: str = attrs.field(validator=_non_empty_name)
    arch: str | None = attrs.field(default=None, validator=_optional_text)
    sm_count: int | None = attrs.field(default=None, validator=_optional_positive)
    mem_bandwidth_gbps: float | None = attrs.field(default=None, validator=_optional_positive)
    smem_per_block_bytes: int | None = attrs.field(default=None, validator=_optional_positive)
    memory_gb: float | None = attrs.field(default=None, validator=_optional_positive)

    @property
    def compute_capability(self) -> int | None:
        """The arch as a number (``sm_90`` -> 90), or None."""
        if self.arch and self.arch.startswith("sm_") and self.arch[3:].isdigit():
            return int(self.arch[3:])
        return None


KNOWN_DEVICES: dict[str, Device] = {
    d.name: d
    for d in (
        # name, arch, SMs, memory bandwidth GB/s, max shared memory per block (opt-in), memory GB
        Device("h100", "sm_90", 132, 3350.0, 232_448, 80.0),  # SXM5
        Device("h200", "sm_90", 132, 4800.0, 232_448, 141.0),
        Device("a100", "sm_80", 108, 1555.0, 166_912, 40.0),  # 40 GB; the 80 GB SXM reaches 2039
        Device("l4", "sm_89", 58, 300.0, 101_376, 24.0),
        Device("l40s", "sm_89", 142, 864.0, 101_376, 48.0),
        Device("a10g", "sm_86", 80, 600.0, 101_376, 24.0),
        Device("t4", "sm_75", 40, 320.0, 65_536, 16.0),
        Device("v100", "sm_70", 80, 900.0, 98_304, 32.0),
        Device("rtx5090", "sm_120", 170, 1792.0, 101_376, 32.0),
        Device("rtx4090", "sm_89", 128, 1008.0, 101_376, 24.0),
        Device("a6000", "sm_86", 84, 768.0, 101_376, 48.0),
        Device("a4000", "sm_86", 48, 448.0, 101_376, 16.0),
    )
}

# Spellings seen in device strings (nvidia-smi, Kernel Tuner's device_name) -> registry name.
_ALIASES: dict[str, str] = {name: name for name in KNOWN_DEVICES} | {
    "5090": "rtx5090", "4090": "rtx4090", "rtxa6000": "a6000", "rtxa4000": "a4000",
}


def normalize_device_name(raw: str) -> str:
    """Map a device string to amk's name: a registry name where one matches, else a tidy slug.

    ``"NVIDIA H100 80GB HBM3"`` -> ``"h100"``; ``"NVIDIA RTX A6000"`` -> ``"a6000"``;
    ``"NVIDIA GeForce RTX 3090 Ti"`` -> ``"rtx-3090-ti"``.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationError(f"a device name must be a non-empty string, got {raw!r}.")
    words = [w for w in re.split(r"[^a-z0-9]+", raw.lower()) if w and w not in VENDOR_WORDS]
    chip_words = [w for w in words if not VARIANT_WORD.match(w)] or words
    if not chip_words:
        raise ValidationError(f"device name {raw!r} names no device; give e.g. 'h100' or 'NVIDIA A100-PCIE-40GB'.")
    joined = "".join(chip_words)
    if joined in _ALIASES:
        return _ALIASES[joined]
    for first, second in zip(chip_words, chip_words[1:]):
        if first + second in _ALIASES:
            return _ALIASES[first + second]
    for word in chip_words:
        if word in _ALIASES:
            return _ALIASES[word]
    return "-".join(chip_words)


def resolve_device(raw: str) -> Device:
    """The registry's device for ``raw`` when known, else a device with that normalised name and no specs."""
    name = normalize_device_name(raw)
    return KNOWN_DEVICES.get(name) or Device(name)
