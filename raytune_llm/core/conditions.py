"""A search space's conditions, read the same way everywhere (sampling, validation, the grid): a param with `when:`
is sampled only while the params it names have one of the listed values, and a `by:` range follows the value of
the param it names, so every such parent is sampled before its children. Params are duck-typed (`when`, `by`:
raytune_llm.schema's Param), so the plug-ins below the schema (the grid searcher) read conditions as it does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def parents(param: Any) -> list[str]:
    """The params `param` depends on: its `when:` conditions and its `by:` ranges."""
    return [*(param.when or {}), *(getattr(param, "by", None) or {})]


def sampling_order(space: Mapping[str, Any]) -> list[str]:
    """Params ordered so that every `when:` or `by:` parent is sampled before its children."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order or name not in space:
            return
        if name in visiting:
            raise ValueError(f"`when:`/`by:` conditions form a cycle through {name!r}")
        visiting.add(name)
        for parent in parents(space[name]):
            visit(parent)
        visiting.discard(name)
        order.append(name)

    for name in space:
        visit(name)
    return order


def allowed_values(values: Any) -> list[Any]:
    """A `when:` condition's values: one value or a list of them."""
    return values if isinstance(values, list) else [values]


def is_active(param: Any, sampled: dict[str, Any]) -> bool:
    return all(
        parent in sampled and sampled[parent] in allowed_values(values)
        for parent, values in (param.when or {}).items()
    )
