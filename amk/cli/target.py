"""How commands name a tuning target on the command line, shared by ``amk warm-start``, ``amk rank`` and
``amk tune`` so they read the same: ``--workload KIND:NAME``, ``--shape``, ``--problem-size``, ``--device``.
"""

from __future__ import annotations

from typing import Any

import click

from amk.core.errors import ValidationError

KIND_CHOICES = ("measured", "predicted", "replayed")

WORKLOAD_HELP = """\b
Name the workload and device like this:
  --workload decode:NAME --shape hidden=2048,n_layers=16,n_heads=32,n_kv_heads=8,head_dim=64,intermediate=8192,vocab=128256
  --workload kernel_tuner:convolution_kernel --problem-size 4096,4096
  --device h100   (or any device string: "NVIDIA A100-PCIE-40GB" resolves to a100,
                   "NVIDIA A100 80GB PCIe MIG 1g.10gb" to a100-pcie-80gb-mig-1g.10gb)
A workload is KIND:NAME; its shape is --shape KEY=VALUE,... (or a JSON object, for lists:
--shape '{"key": [1024, 1024, "torch.float16"]}' names a Triton tuning key) and, for Kernel Tuner
kernels, --problem-size N,N,... (the cache header's problem_size; a single N is a number, "N," a
list of one). Decode workloads match by shape (the nearest shape transfers whatever its name); other
kinds only within the same kernel."""


def _parse_value(text: str) -> Any:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def parse_problem_size(text: str) -> Any:
    """A Kernel Tuner problem size from ``N,N,...``, as Kernel Tuner keeps it: a list, or a single number
    ("4096" names the number, "4096," a list of one); an item that is not an integer is kept as text
    (an expression such as ``bx*64``, or ``callable``). click.BadParameter (a usage error) when malformed."""
    items = [p.strip() for p in text.split(",")]
    if len(items) > 1 and not items[-1]:  # "4096,": a list of one
        items.pop()
    if not all(items):  # "1024,,1024" is a typo, not [1024, 1024]
        raise click.BadParameter(f"{text!r} must be N,N,... with no empty item (integers, or expressions kept as "
                                 "text).", param_hint="'--problem-size'")
    sizes = [int(p) if p.lstrip("-").isdigit() else p for p in items]
    if any(isinstance(size, int) and size < 1 for size in sizes):
        raise click.BadParameter(f"{text!r}: sizes must be positive integers (or expressions kept as text).",
                                 param_hint="'--problem-size'")
    return sizes[0] if len(sizes) == 1 and "," not in text else sizes


def parse_shape(shape: str | None) -> dict[str, Any]:
    """A shape from ``KEY=VALUE,...`` (numbers where a value reads as one) or a JSON object (for values
    that are lists or text with commas: a Triton tuning key); click.BadParameter when malformed."""
    if shape is not None and shape.strip().startswith("{"):
        import json

        try:
            values = json.loads(shape)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"{shape!r} is not a JSON object ({exc}); give KEY=VALUE,... or a JSON object "
                                     'such as {"key": [1024, "torch.float16"]}.', param_hint="'--shape'") from None
        if not isinstance(values, dict):
            raise click.BadParameter(f"{shape!r} must be one JSON object.", param_hint="'--shape'")
        return values
    values: dict[str, Any] = {}
    for item in (shape or "").split(","):
        if not item.strip():
            continue
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise click.BadParameter(f"item {item!r} must be KEY=VALUE, e.g. hidden=2048.", param_hint="'--shape'")
        values[key.strip()] = _parse_value(value.strip())
    return values


def parse_workload(spec: str, shape: str | None, problem_size: str | None, *, sized_step: bool = False):
    """A Workload from ``KIND:NAME``, ``KEY=VALUE,...`` and ``N,N,...``; click.BadParameter (a usage
    error, exit 2) when one of them is malformed. ``sized_step``: a decode shape must give every field a
    decode step is sized by (``amk tune``), all missing ones named at once."""
    from amk.core.workload import Workload
    from amk.decode.shapes import SHAPE_FIELDS, ModelShape
    from amk.decode.step import missing_fields
    from amk.decode.workload import DECODE_KIND

    kind, sep, name = spec.partition(":")
    if not sep or not kind or not name:
        raise click.BadParameter(f"{spec!r} must be KIND:NAME, e.g. decode:llama-1b or kernel_tuner:my_kernel.",
                                 param_hint="'--workload'")
    values = parse_shape(shape)
    if problem_size:
        values["problem_size"] = parse_problem_size(problem_size)
    if kind == DECODE_KIND:
        unknown = sorted(set(values) - set(SHAPE_FIELDS) - {"dtype"})
        if unknown:
            raise click.BadParameter(f"decode shape key(s) {unknown} are unknown; use {list(SHAPE_FIELDS)} (and dtype).",
                                     param_hint="'--shape'")
        try:  # counts and sizes >= 0
            missing = missing_fields(ModelShape.from_mapping({k: v for k, v in values.items() if k != "dtype"}))
        except ValidationError as exc:
            raise click.BadParameter(str(exc), param_hint="'--shape'") from None
        if sized_step and missing:
            raise click.BadParameter(
                f"a decode step is sized by {', '.join(missing)}, which the shape lacks; add "
                f"{','.join(f'{f}=...' for f in missing)} (given: {shape or 'nothing'}).", param_hint="'--shape'")
    return Workload(kind, name, values)


def workload_options(func):
    for option in reversed((
        click.option("--workload", "workload_spec", required=True, metavar="KIND:NAME",
                     help="The workload: decode:NAME or kernel_tuner:KERNEL (any kind:name)."),
        click.option("--shape", metavar="KEY=VALUE,...", help="The workload's shape (or a JSON object)."),
        click.option("--problem-size", metavar="N,N,...", help="Kernel Tuner problem size (shape problem_size)."),
        click.option("--device", required=True, help="The device: h100, a100, 'NVIDIA RTX A6000', ..."),
        click.option("--kind", "kinds", multiple=True, type=click.Choice(KIND_CHOICES),
                     help="Measurement kinds to learn from (repeatable; default: measured; amk tune: its "
                          "backend's own kind and measured, e.g. predicted and measured for roofline)."),
    )):
        func = option(func)
    return func


def parse_kinds(kinds: tuple[str, ...]):
    from amk.core.records import MeasurementKind

    return tuple(MeasurementKind(k) for k in (kinds or ("measured",)))


def note_left_out_kinds(corpus, workload_kind: str | None, kinds, *, chosen: bool, default: str = "the default") -> None:
    """An ``amk: note:`` naming the measurement kinds of the corpus's rows (of ``workload_kind``; None: all)
    that a command does not learn from, how many, and the --kind that adds them; nothing when none is left
    out. ``chosen``: --kind picked the kinds (else ``default`` says whose default it is)."""
    if len(corpus) == 0:
        return
    import numpy as np

    from amk.cli.output import note
    from amk.core.columns import KIND_CODES

    rows = (np.ones(len(corpus), dtype=bool) if workload_kind is None else
            np.asarray([w.kind == workload_kind for w in corpus.workloads], dtype=bool)[corpus.workload_index])
    counts = np.bincount(corpus.kind[rows], minlength=len(KIND_CODES))
    left = {k.value: int(n) for k, n in zip(KIND_CODES, counts) if n and k not in kinds}
    if left:
        how = "as --kind chose" if chosen else default
        what = ", ".join(f"{n} {k}" for k, n in left.items())
        note(f"learning from {'/'.join(k.value for k in kinds)} points ({how}); left out: {what} "
             f"{workload_kind + ' ' if workload_kind else ''}point(s) (--kind {' --kind '.join(left)} adds them)")
