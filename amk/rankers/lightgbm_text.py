"""What LightGBM is given to load: a model text amk rebuilt from checked numbers, never the file's own bytes.

LightGBM parses a model's trees in parallel, and a format error there ends in ``std::terminate``
(SIGABRT); a damaged parameters section after the trees can end in a segmentation fault. A truncated or
interrupted save, or a file edited by hand, would take the whole process down. ``canonical_model_text``
reads the file the way LightGBM would, checks every part a prediction uses, and writes a new model text
from the checked values alone: the header fields LightGBM needs, each tree's arrays (numbers formatted by
Python, as many as the tree's leaves require, child links that form one tree, splits on features that
exist), and ``end of trees``. Anything else (feature infos, the parameters, the training's notes) is
left out: predictions do not read it. What cannot be checked is refused with a ModelFileError: a damaged
file, and the kinds of model amk never trains (categorical splits, linear leaves, other objectives).
"""

from __future__ import annotations

import math
import re

from amk.core.errors import ModelFileError

OBJECTIVES = ("regression", "lambdarank")  # what amk's lightgbm ranker trains
_VERSIONS = ("v2", "v3", "v4")
_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
# (field, per "leaf" or "internal" node, number type) in LightGBM's order
_TREE_FIELDS = (
    ("split_feature", "internal", int), ("split_gain", "internal", float), ("threshold", "internal", float),
    ("decision_type", "internal", int), ("left_child", "internal", int), ("right_child", "internal", int),
    ("leaf_value", "leaf", float), ("leaf_weight", "leaf", float), ("leaf_count", "leaf", int),
    ("internal_value", "internal", float), ("internal_weight", "internal", float),
    ("internal_count", "internal", int),
)


def _fail(where: str, what: str) -> ModelFileError:
    return ModelFileError(f"{where}: not a LightGBM model amk can load ({what}); train and save the model again.")


def _fields(lines: list[str], where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        if not line:
            continue
        key, eq, value = line.partition("=")
        if not eq or key in out:
            raise _fail(where, f"the line {line[:40]!r} is not one KEY=VALUE")
        out[key] = value
    return out


def _int(value: str, where: str, what: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise _fail(where, f"{what} {value[:40]!r} is not an integer") from None
    if not low <= number <= high:
        raise _fail(where, f"{what} {number} is outside {low}..{high}")
    return number


def _numbers(fields: dict[str, str], key: str, count: int, kind: type, where: str) -> list:
    parts = fields.get(key, "").split(" ") if fields.get(key) else []
    if len(parts) != count:
        raise _fail(where, f"{key} holds {len(parts)} values, not {count}")
    try:
        values = [kind(p) for p in parts]
    except ValueError:
        raise _fail(where, f"{key} holds a value that is not a number") from None
    if kind is float and not all(math.isfinite(v) for v in values):
        raise _fail(where, f"{key} holds a value that is not finite")
    if kind is int and any(abs(v) >= 1 << 62 for v in values):
        raise _fail(where, f"{key} holds an integer out of range")
    return values


def _text(values: list) -> str:
    return " ".join(repr(v) if isinstance(v, float) else str(v) for v in values)


def _tree(block: str, index: int, n_features: int, where: str) -> str:
    """The canonical text of one tree block (ModelFileError when it is not a tree LightGBM can read)."""
    at = f"{where}: tree {index}"
    lines = block.strip("\n").split("\n")
    if lines[0] != f"Tree={index}":
        raise _fail(at, f"the block starts with {lines[0][:40]!r}, not 'Tree={index}'")
    fields = _fields(lines[1:], at)
    leaves = _int(fields.get("num_leaves", ""), at, "num_leaves", 1, 1 << 20)
    if fields.get("num_cat", "0") != "0":
        raise _fail(at, "it has categorical splits")
    if fields.get("is_linear", "0") != "0":
        raise _fail(at, "it has linear leaves")
    shrinkage = _numbers(fields, "shrinkage", 1, float, at)[0] if "shrinkage" in fields else 1.0
    internal = leaves - 1
    arrays = {}
    for key, per, kind in _TREE_FIELDS:
        count = leaves if per == "leaf" else internal
        if leaves == 1 and key in ("leaf_weight",) and not fields.get(key):
            arrays[key] = []  # a one-leaf tree leaves its weight out
            continue
        arrays[key] = _numbers(fields, key, count, kind, at)
    if any(not 0 <= f < n_features for f in arrays["split_feature"]):
        raise _fail(at, f"a split is on a feature past max_feature_idx {n_features - 1}")
    if any(d < 0 or d & 1 or d >= 16 or (d >> 2) & 3 == 3 for d in arrays["decision_type"]):
        raise _fail(at, "a decision_type is not a numerical split")
    # Every internal node but the root, and every leaf, is the child of exactly one node: one tree, no cycle.
    seen_nodes, seen_leaves = [0] * max(internal, 1), [0] * leaves
    for child in arrays["left_child"] + arrays["right_child"]:
        if 0 < child < internal:
            seen_nodes[child] += 1
        elif -leaves <= child < 0:
            seen_leaves[~child] += 1
        else:
            raise _fail(at, f"a child link {child} points outside the tree")
    if internal and (seen_nodes[0] or any(n != 1 for n in seen_nodes[1:internal]) or any(n != 1 for n in seen_leaves)):
        raise _fail(at, "its child links do not form one tree")
    out = [f"Tree={index}", f"num_leaves={leaves}", "num_cat=0"]
    out += [f"{key}={_text(arrays[key])}" for key, _, _ in _TREE_FIELDS]
    out += ["is_linear=0", f"shrinkage={_text([shrinkage])}"]
    return "\n".join(out) + "\n\n\n"


def _feature_info(info: str, where: str) -> str:
    """A numerical feature's range (``[low:high]``) or ``none`` (a constant feature), rebuilt from its numbers."""
    if info == "none":
        return info
    if not (info.startswith("[") and info.endswith("]")) or info.count(":") != 1:
        raise _fail(where, f"the feature info {info[:40]!r} is not a numerical range")
    try:
        low, high = (float(v) for v in info[1:-1].split(":"))
    except ValueError:
        raise _fail(where, f"the feature info {info[:40]!r} is not a numerical range") from None
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise _fail(where, f"the feature info {info[:40]!r} is not a finite range")
    return f"[{low!r}:{high!r}]"


def canonical_model_text(text: str, where: str) -> str:
    """A model text LightGBM can load, rebuilt from the checked contents of ``text`` (see the module docstring);
    ModelFileError naming ``where`` when ``text`` is not a complete model of amk's kind."""
    head, sep, rest = text.partition("\n\n")
    lines = head.split("\n")
    if not sep or lines[0] != "tree":
        raise _fail(where, "it does not start with a LightGBM model header")
    header = _fields(lines[1:], where)
    for key in ("version", "num_class", "num_tree_per_iteration", "max_feature_idx", "objective", "tree_sizes"):
        if key not in header:
            raise _fail(where, f"its header has no {key}")
    if header["version"] not in _VERSIONS:
        raise _fail(where, f"version {header['version'][:20]!r} is not one of {list(_VERSIONS)}")
    if _int(header["num_class"], where, "num_class", 1, 1) != 1 or \
            _int(header["num_tree_per_iteration"], where, "num_tree_per_iteration", 1, 1) != 1:
        raise _fail(where, "it is a multi-class model")
    label_index = _int(header.get("label_index", "0"), where, "label_index", 0, 1 << 20)
    n_features = _int(header["max_feature_idx"], where, "max_feature_idx", 0, (1 << 20) - 1) + 1
    objective = header["objective"].split(" ")
    if objective[0] not in OBJECTIVES or not all(re.fullmatch(r"[a-z_]+:[0-9.eE+-]+", p) for p in objective[1:]):
        raise _fail(where, f"the objective {header['objective'][:40]!r} is not one of {list(OBJECTIVES)}")
    names = header.get("feature_names", " ".join(f"Column_{i}" for i in range(n_features))).split(" ")
    if len(names) != n_features or not all(_NAME.match(n) for n in names):
        raise _fail(where, "feature_names does not name max_feature_idx + 1 features")
    infos = header.get("feature_infos", "").split(" ")
    if len(infos) != n_features:
        raise _fail(where, "feature_infos does not describe max_feature_idx + 1 features")
    infos = [_feature_info(info, where) for info in infos]
    sizes = [_int(s, where, "a tree size", 1, len(rest)) for s in header["tree_sizes"].split(" ") if s]
    trees, pos = [], 0
    for index, size in enumerate(sizes):
        if pos + size > len(rest):
            raise _fail(where, f"tree {index} runs past the end of the file (a truncated save?)")
        trees.append(_tree(rest[pos:pos + size], index, n_features, where))
        pos += size
    if not rest[pos:].lstrip("\n").startswith("end of trees"):
        raise _fail(where, "no 'end of trees' after the trees (a truncated save?)")
    out = ["tree", f"version={header['version']}", "num_class=1", "num_tree_per_iteration=1",
           f"label_index={label_index}", f"max_feature_idx={n_features - 1}", f"objective={' '.join(objective)}",
           f"feature_names={' '.join(names)}", f"feature_infos={' '.join(infos)}", f"tree_sizes={' '.join(str(len(t.encode())) for t in trees)}"]
    return "\n".join(out) + "\n\n" + "".join(trees) + "end of trees\n"
