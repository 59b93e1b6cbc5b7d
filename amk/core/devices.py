"""Devices: a name plus the public specs that let tuning knowledge transfer between GPUs.

``resolve_device("NVIDIA H100 80GB HBM3")`` gives the table's ``h100``. The table (``devices.json`` beside
this module, with the source of every number) names a board variant on its own only where its specs
differ from its family's: ``NVIDIA A100-PCIE-40GB`` and ``NVIDIA A100-SXM4-40GB`` are both ``a100``, but
``NVIDIA A100 80GB PCIe`` is ``a100-pcie-80gb`` (1935 GB/s) and ``NVIDIA A100-SXM4-80GB`` is
``a100-sxm4-80gb`` (2039 GB/s). A MIG slice is a device of its own, ``<parent>-mig-<g>g.<m>gb``, with a
fraction of its parent's SMs and bandwidth. A device the table does not know still resolves, to a
normalised name with unknown (None) specs. A string that names no device (empty, no letter or digit, a
CPU architecture such as ``x86_64``) or several (``AMD Instinct MI250X/MI250``, an ISA target such as
``gfx90a``, an A100 of unstated memory) raises ValidationError saying what it could be.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Any

import attrs

from amk.core.errors import ValidationError

VENDOR_WORDS = frozenset({"nvidia", "geforce", "tesla", "quadro", "corporation"})
# Words that describe a board variant (memory size, form factor) rather than the chip.
VARIANT_WORD = re.compile(r"^(\d+gb|hbm\d?e?|pcie|sxm\d?|nvl|gddr\d+x?|\d+g)$")
# NVIDIA's name of a MIG instance: the parent's name, then "MIG <g>g.<m>gb" (and "+me" with media engines).
MIG_SUFFIX = re.compile(r"(?<![a-z0-9])mig[\s_-]+(\d+)g\.(\d+)gb(\+me)?(?![a-z0-9])")
# What Kernel Tuner's C backend writes as device_name (platform.processor()): an architecture, not a device.
CPU_ARCHITECTURES = frozenset({"x86_64", "x86-64", "amd64", "i386", "i686", "arm", "arm64", "aarch64", "armv7l",
                               "ppc64le", "ppc64", "s390x", "riscv64"})


def _optional_positive(instance: Any, attribute: attrs.Attribute, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValidationError(f"Device.{attribute.name}={value!r} must be a positive number (or None if unknown).")


def _non_empty_name(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"a device name must be a non-empty string, got {value!r}.")


@attrs.frozen
class Device:
    """A GPU (or CPU) and the specs amk knows of it; None means unknown."""

    name: str = attrs.field(validator=_non_empty_name)
    arch: str | None = None
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


_TABLE: dict[str, Any] = json.loads((Path(__file__).with_name("devices.json")).read_text(encoding="utf-8"))

# The devices whose specs amk knows and compares (transfer between them by specs).
KNOWN_DEVICES: dict[str, Device] = {name: Device(name, *specs) for name, specs in _TABLE["devices"].items()}
# Devices amk names (AMD, Intel) without specs it could compare with an NVIDIA GPU's.
NAMED_DEVICES: dict[str, Device] = {name: Device(name, arch) for name, arch in _TABLE["named"].items()}
# Family -> (the form factor and memory words of a device string -> name), e.g. a100 -> {"pcie-80gb": ...}.
VARIANTS: dict[str, dict[str, str]] = _TABLE["variants"]
_FAMILY_OF = {name: family for family, names in VARIANTS.items() for name in names.values()}
_ALIASES: dict[str, str] = ({name: name for name in KNOWN_DEVICES} | _TABLE["aliases"]
                            | _TABLE["named_aliases"])
_AMBIGUOUS: dict[str, list[str]] = _TABLE["ambiguous"]


def _form_and_memory(words: list[str]) -> str:
    """The variant key of a family's device string: form factor, then memory (``pcie-80gb``, ``nvl``, ``""``)."""
    form = next((f for f in ("nvl", "pcie") if f in words), None)
    if form is None and any(re.fullmatch(r"sxm\d?", w) for w in words):
        form = "sxm"
    if form is None:
        form = next((w for w in ("hbm3e", "hbm3", "hbm2e") if w in words), None)
    memory = next((w for w in words if re.fullmatch(r"\d+gb", w)), None)
    return "-".join(part for part in (form, memory) if part)


def _chip_name(text: str, raw: str) -> str:
    """The table's name (or a tidy slug) of a lower-case device string without its MIG suffix."""
    if text.strip() in CPU_ARCHITECTURES:
        raise ValidationError(f"device name {raw!r} is a CPU architecture, not a device (Kernel Tuner's C backend "
                              "writes the processor's architecture)")
    for token in re.split(r"[^a-z0-9/]+", text):
        if token in _AMBIGUOUS:
            raise ValidationError(f"device name {raw!r} names more than one device ({', '.join(_AMBIGUOUS[token])})")
    words = [w for w in re.split(r"[^a-z0-9]+", text) if w and w not in VENDOR_WORDS]
    chip_words = [w for w in words if not VARIANT_WORD.match(w)] or words
    if not chip_words:
        raise ValidationError(f"device name {raw!r} names no device")
    family = next((w for w in chip_words if w in VARIANTS), None)
    if family is not None:
        key = _form_and_memory(words)
        if key not in VARIANTS[family]:
            choices = ", ".join(sorted(set(VARIANTS[family].values())))
            raise ValidationError(f"device name {raw!r} is an {family.upper()} whose variant amk cannot tell from "
                                  f"it ({key or 'no form factor or memory'}); its variants differ in specs: {choices}")
        return VARIANTS[family][key]
    # Longest run of words first: "rtx 7900 xtx" before "7900".
    for size in range(len(chip_words), 0, -1):
        for start in range(len(chip_words) - size + 1):
            joined = "".join(chip_words[start:start + size])
            if joined in _ALIASES:
                return _ALIASES[joined]
    return "-".join(chip_words)


def normalize_device_name(raw: str) -> str:
    """Map a device string to amk's name: a table name where one matches, else a tidy slug.

    ``"NVIDIA H100 80GB HBM3"`` -> ``"h100"``; ``"NVIDIA A100 80GB PCIe MIG 1g.10gb"`` ->
    ``"a100-pcie-80gb-mig-1g.10gb"``; ``"NVIDIA GeForce RTX 3090 Ti"`` -> ``"rtx-3090-ti"``. A name is its
    own normal form. Raises ValidationError for a string that names no device or several.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationError(f"a device name must be a non-empty string, got {raw!r}.")
    text = unicodedata.normalize("NFKC", raw).strip().lower()
    if not re.search(r"[a-z0-9]", text):
        raise ValidationError(f"device name {raw!r} has no letter or digit amk can read")
    mig = MIG_SUFFIX.search(text)
    if mig:
        text = text[:mig.start()] + " " + text[mig.end():]
    name = _chip_name(text, raw)
    return f"{name}-mig-{int(mig.group(1))}g.{int(mig.group(2))}gb" if mig else name


def _mig_slice(parent: Device, name: str, compute_slices: int, memory_gb: float) -> Device:
    """A MIG instance's specs: SMs per compute slice (driver-reported, else an estimate of parent / 7 per
    slice) and bandwidth by its share of the parent's 8 memory slices (NVIDIA MIG user guide)."""
    per_slice = _TABLE["mig"]["sm_per_slice"].get(_FAMILY_OF.get(parent.name, parent.name))
    sms = None
    if parent.sm_count:
        sms = per_slice * compute_slices if per_slice else max(1, parent.sm_count * compute_slices // 7)
    bandwidth = None
    if parent.mem_bandwidth_gbps and parent.memory_gb:
        memory_slices = min(8, max(1, round(8 * memory_gb / parent.memory_gb)))
        bandwidth = parent.mem_bandwidth_gbps * memory_slices / 8
    return Device(name, parent.arch, sms, bandwidth, parent.smem_per_block_bytes, memory_gb)


def resolve_device(raw: str) -> Device:
    """The table's device for ``raw`` when known (a MIG slice with its share of its parent's specs), else a
    device with that normalised name and no specs. Raises ValidationError as normalize_device_name."""
    name = normalize_device_name(raw)
    mig = re.fullmatch(r"(.+)-mig-(\d+)g\.(\d+)gb", name)
    if mig:
        parent = resolve_device(mig.group(1))
        return _mig_slice(parent, name, int(mig.group(2)), float(mig.group(3)))
    return KNOWN_DEVICES.get(name) or NAMED_DEVICES.get(name) or Device(name)
