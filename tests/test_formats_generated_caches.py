"""Generated Kernel Tuner caches, as the wild writes them: knobs of mixed types, every failure marker, NaN
and Infinity, any key order, cut off anywhere, a byte that is not UTF-8 anywhere. Whatever the damage, the
import raises no traceback, keeps every whole well-formed entry, and reports every other one naming the
file (and the entry's key, or its line when the key itself is unreadable)."""

from __future__ import annotations

import json
import math
import random
import statistics
from pathlib import Path

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amk.core.errors import ImportFormatError
from amk.core.records import Verdict
from amk.formats import read_file

MARKERS = {"InvalidConfig": Verdict.REJECTED, "CompilationFailedConfig": Verdict.FAIL,
           "RuntimeFailedConfig": Verdict.CRASH, "ErrorConfig": Verdict.FAIL}
KNOB_VALUES = st.one_of(st.integers(-4, 1024), st.sampled_from([0.5, 2.0, 1e-3]), st.booleans(),
                        st.sampled_from(["a", "tile", "x*2", "é"]))
GOOD_MS = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False, allow_infinity=False)
BAD_TIMES = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -1.5, "1.0", "fast", None])


@attrs.frozen
class Entry:
    key: str
    fields: dict
    verdict: Verdict | None  # None: ill-formed, must be reported
    latency_us: float | None = None


@st.composite
def entries(draw, names: list[str]):
    config = {n: draw(KNOB_VALUES) for n in names}
    kind = draw(st.sampled_from(["pass", "pass-no-times", "marker-time", "marker-error", "marker-legacy-error",
                                 "marker-objective", "sentinel", "bad-time", "bad-sample", "nan-metric"]))
    fields = dict(config)
    verdict, latency = Verdict.PASS, None
    if kind in ("pass", "nan-metric"):
        times = draw(st.lists(GOOD_MS, min_size=1, max_size=6))
        fields.update(time=sum(times) / len(times), times=times)
        latency = statistics.median(sorted(t * 1000.0 for t in times))
        if kind == "nan-metric":
            fields["GFLOP/s"] = math.nan
    elif kind == "pass-no-times":
        fields["time"] = draw(GOOD_MS)
        latency = fields["time"] * 1000.0
    elif kind.startswith("marker"):
        marker = draw(st.sampled_from(sorted(MARKERS)))
        field = {"marker-time": "time", "marker-error": "__error__", "marker-legacy-error": "error",
                 "marker-objective": "GFLOP/s"}[kind]
        fields[field] = marker
        verdict = MARKERS[marker]
    elif kind == "sentinel":
        fields["time"] = 1e20
        verdict = Verdict.FAIL
    elif kind == "bad-time":
        bad = draw(BAD_TIMES)
        if bad is not None:
            fields["time"] = bad
        fields["times"] = [1.0, 1.0]
        verdict = None
    else:  # bad-sample
        fields.update(time=1.0, times=[1.0, draw(st.sampled_from([math.nan, math.inf, 0.0, -2.0, "x"])), 1.0])
        verdict = None
    fields["timestamp"] = draw(st.sampled_from(["2024-01-01 00:00:00+00:00", "2024-03-01T12:00:00", "2024-01-01Z"]))
    if draw(st.booleans()):
        fields["note"] = draw(st.sampled_from(["ok", "café", "line\nbreak"]))
    items = list(fields.items())
    draw(st.randoms(use_true_random=False)).shuffle(items)
    return Entry(",".join(str(v) for v in config.values()), dict(items), verdict, latency)


@st.composite
def caches(draw):
    names = draw(st.lists(st.sampled_from(["bx", "by", "tile", "unroll", "flag"]), min_size=1, max_size=3,
                          unique=True))
    made = draw(st.lists(entries(names), min_size=1, max_size=8))
    seen, cache = set(), []
    for entry in made:
        if entry.key not in seen:
            seen.add(entry.key)
            cache.append(entry)
    header = {"device_name": "NVIDIA A100-PCIE-40GB", "kernel_name": "gen", "problem_size": [64, 64],
              "tune_params_keys": names, "tune_params": {n: [] for n in names},
              "objective": draw(st.sampled_from(["time", ["time"]]))}
    order = list(header) + ["cache"]
    draw(st.randoms(use_true_random=False)).shuffle(order)
    closed = draw(st.booleans())
    return order, header, cache, closed


def render(order, header, cache, closed) -> tuple[bytes, dict[str, tuple[int, int]], int]:
    """The file as Kernel Tuner writes it (one entry per line), each entry's byte span, and where the
    header is whole and the cache object open (the byte after both)."""
    out, spans, header_end = b"{", {}, 0
    for i, key in enumerate(order):
        out += b"\n" if i == 0 else b",\n"
        if key != "cache":
            out += f"{json.dumps(key)}: {json.dumps(header[key])}".encode()
            header_end = len(out)
            continue
        out += b'"cache": {'
        header_end = max(header_end, len(out))
        for j, entry in enumerate(cache):
            out += b"\n" if j == 0 else b",\n"
            start = len(out)
            out += f"{json.dumps(entry.key)}: {json.dumps(entry.fields)}".encode()
            spans[entry.key] = (start, len(out))
        out += b"}" if closed or key != order[-1] else b","
    if closed:
        out += b"\n}"
    return out, spans, header_end


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(caches(), st.floats(0, 1), st.one_of(st.none(), st.floats(0, 1)), st.randoms(use_true_random=False))
def test_a_generated_cache_imports_every_whole_good_entry_and_reports_every_other(tmp_path_factory, cache, cut_at,
                                                                               damage_at, rng: random.Random):
    order, header, entries_, closed = cache
    data, spans, header_end = render(order, header, entries_, closed)
    cut = len(data) if cut_at > 0.7 else int(len(data) * cut_at / 0.7)
    data = data[:cut]
    damaged = None
    if damage_at is not None and data:
        damaged = min(int(len(data) * damage_at), len(data) - 1)
        data = data[:damaged] + bytes([rng.choice([0xFF, 0xC3, 0x80, 0xE9])]) + data[damaged + 1:]
    path = tmp_path_factory.mktemp("gen") / "cache.json"
    path.write_bytes(data)

    try:
        items = list(read_file(path, "kernel-tuner"))
    except ImportFormatError as exc:  # the header itself was cut or damaged: the whole file, named
        assert str(path) in str(exc)
        assert cut < header_end or (damaged is not None and damaged < header_end), exc
        return
    records = {r.provenance.source.split("#", 1)[1]: r for r in (i.record for i in items if i.record)}
    problems = [i.problem for i in items if i.problem]
    assert all(str(path) in p.where for p in problems)
    reported = {p.where.split("#", 1)[1] for p in problems if "#" in p.where}
    by_place = [p for p in problems if "#" not in p.where]
    header_hit = damaged is not None and damaged < header_end
    for entry in entries_:
        start, end = spans[entry.key]
        hit = damaged is not None and (start <= damaged < end or header_hit)
        if end > cut:
            assert entry.key not in records or hit, entry.key  # cut off: not imported as if whole
            continue
        if hit:  # imported as it now reads, or reported (by key, or by place when the key was hit)
            assert (entry.key in records or any(r.config == _config(entry, header) for r in records.values())
                    or entry.key in reported or by_place or any("\ufffd" in k for k in reported)), entry.key
            continue
        if entry.verdict is None:
            assert entry.key in reported, (entry.key, problems)
            continue
        assert entry.key in records, (entry.key, problems)
        record = records[entry.key]
        assert record.config == _config(entry, header)
        assert record.measurement.verdict is entry.verdict
        if entry.latency_us is not None:
            assert math.isclose(record.measurement.latency_us, entry.latency_us, rel_tol=1e-12)
    cut_inside = any(start < cut < end for start, end in spans.values())
    if cut_inside:
        assert any("cut off" in p.reason for p in by_place), problems


def _config(entry: Entry, header: dict) -> dict:
    return {n: entry.fields[n] for n in header["tune_params_keys"]}


def test_the_generator_writes_what_kernel_tuner_reads(tmp_path):
    """The rendering above is a real cache: whole and undamaged, every good entry imports, nothing else."""
    entry = Entry("32", {"bx": 32, "time": 1.0, "times": [1.0], "timestamp": "2024-01-01 00:00:00+00:00"},
                  Verdict.PASS, 1000.0)
    header = {"device_name": "NVIDIA A100-PCIE-40GB", "kernel_name": "gen", "problem_size": [64, 64],
              "tune_params_keys": ["bx"], "tune_params": {"bx": [32]}, "objective": "time"}
    data, _, _ = render(list(header) + ["cache"], header, [entry], True)
    json.loads(data)
    path = Path(tmp_path / "c.json")
    path.write_bytes(data)
    [item] = list(read_file(path))
    assert item.record.measurement.latency_us == 1000.0
