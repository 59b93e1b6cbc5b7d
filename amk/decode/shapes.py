"""``ModelShape``: the shape of an LLM decode workload, and the distance that drives nearest-shape transfer.

Two models with the same hidden size, depth, GQA grouping and FFN ratio tune almost identically, so
amk keys past schedules on the shape, never on the model's name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from amk.core.errors import ValidationError

SHAPE_FIELDS: tuple[str, ...] = (
    "hidden", "n_layers", "n_heads", "n_kv_heads", "head_dim", "intermediate", "vocab",
)


def _non_negative_int(instance: Any, attribute: attrs.Attribute, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(
            f"ModelShape.{attribute.name} must be a non-negative integer, got {value!r}; "
            "use 0 for a dimension that is unknown."
        )


@attrs.frozen
class ModelShape:
    """The dimensions that decide which past schedules transfer; 0 means unknown."""

    hidden: int = attrs.field(default=0, validator=_non_negative_int)
    n_layers: int = attrs.field(default=0, validator=_non_negative_int)
    n_heads: int = attrs.field(default=0, validator=_non_negative_int)
    n_kv_heads: int = attrs.field(default=0, validator=_non_negative_int)
    head_dim: int = attrs.field(default=0, validator=_non_negative_int)
    intermediate: int = attrs.field(default=0, validator=_non_negative_int)
    vocab: int = attrs.field(default=0, validator=_non_negative_int)

    @classmethod
    def from_config(cls, cfg: Any) -> ModelShape:
        """Build from any object (or mapping) with the shape's fields; ``n_kv_heads`` defaults to ``n_heads``."""

        def get(name: str, default: int = 0) -> int:
            raw = cfg.get(name, default) if isinstance(cfg, Mapping) else getattr(cfg, name, default)
            try:
                return int(raw or 0)
            except (TypeError, ValueError):
                raise ValidationError(
                    f"model config field {name!r} must be an integer, got {raw!r}; fix the model config."
                ) from None

        n_heads = get("n_heads")
        return cls(
            hidden=get("hidden"),
            n_layers=get("n_layers"),
            n_heads=n_heads,
            n_kv_heads=get("n_kv_heads", n_heads),
            head_dim=get("head_dim"),
            intermediate=get("intermediate"),
            vocab=get("vocab"),
        )

    @classmethod
    def from_graph(cls, graph: Any) -> ModelShape:
        """Build from a model graph that carries its config in ``.config`` (or is the config itself)."""
        return cls.from_config(getattr(graph, "config", graph))

    @classmethod
    def from_mapping(cls, shape: Mapping[str, Any]) -> ModelShape:
        """Build from a workload's shape mapping; keys that are not shape fields are refused."""
        unknown = sorted(set(shape) - set(SHAPE_FIELDS))
        if unknown:
            raise ValidationError(
                f"unknown ModelShape field(s) {unknown}; allowed fields are {list(SHAPE_FIELDS)}."
            )
        return cls(**{k: shape[k] for k in SHAPE_FIELDS if k in shape})

    def to_dict(self) -> dict[str, int]:
        return attrs.asdict(self)

    def feature_vec(self) -> list[float]:
        """Log-scaled shape features: sizes span orders of magnitude, logs keep distances sane."""
        gqa = self.n_heads / self.n_kv_heads if self.n_kv_heads else 1.0
        ffn_ratio = self.intermediate / self.hidden if self.hidden else 0.0
        return [
            math.log1p(self.hidden),
            math.log1p(self.n_layers),
            math.log1p(self.n_heads),
            gqa,
            math.log1p(self.head_dim),
            ffn_ratio,
            math.log1p(self.vocab),
        ]

    def distance(self, other: ModelShape) -> float:
        """Euclidean distance in the log-feature space; 0 means the same shape family."""
        return math.dist(self.feature_vec(), other.feature_vec())
