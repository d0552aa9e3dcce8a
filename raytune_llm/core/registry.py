"""The one way raytune-llm is extended: a registry per kind of plug-in (searchers, schedulers, trackers, executors,
stability detectors, tasks, PEFT methods; and the built-in assets), filled by `@registry.register("name")` on the
plug-in's class.

A registry checks a plug-in once, when it registers: its name (lower case, unique in its kind), the hooks its kind
needs (every plug-in kind has `problems(cfg)`, the checks `validate` collects from the plug-ins an experiment uses;
the built-in assets need none), and whatever else its kind requires (`check`). Those are the developer's mistakes
and fail at import. A user's unknown name fails when it is looked up, in one line that lists the choices.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Generic, TypeVar, Union

from raytune_llm.core.errors import UserError

T = TypeVar("T")
NAME = re.compile(r"[a-z][a-z0-9_]*")


class Registry(Generic[T]):
    def __init__(self, kind: str, needs: tuple[str, ...] = ("problems",),
                 check: Callable[[str, T], str | None] | None = None) -> None:
        """`needs`: the callables every plug-in of this kind provides; `check(name, item)`: what else is wrong with
        a plug-in of this kind, or None."""
        self.kind, self.needs, self.check = kind, needs, check
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if not NAME.fullmatch(name):
                raise ValueError(f"{self.kind} {name!r}: a name is lower case letters, digits and _")
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            missing = [hook for hook in self.needs if not callable(getattr(item, hook, None))]
            if missing:
                raise TypeError(f"{self.kind} {name!r} has no {', '.join(missing)}()")
            if self.check is not None and (problem := self.check(name, item)):
                raise TypeError(f"{self.kind} {name!r}: {problem}")
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        if name not in self._items:
            raise UserError(f"unknown {self.kind} {name!r}; choose from {sorted(self._items)}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[tuple[str, T]]:
        """(name, plug-in) in the order they registered (where order matters, e.g. which detector speaks first)."""
        return iter(list(self._items.items()))

    def union(self, default: str, aliases: dict[str, str] | None = None) -> Any:
        """For plug-ins that are pydantic models chosen by a `name:` field: the discriminated union of them all,
        the config section a user writes (`name` missing: `default`; an old name in `aliases`: its new one)."""
        from pydantic import Discriminator, Tag

        aliases = aliases or {}

        def tag(value: Any) -> str:
            name = value.get("name", default) if isinstance(value, dict) else getattr(value, "name", default)
            return aliases.get(name, name)

        if not self._items:
            raise ValueError(f"no {self.kind} is registered: nothing to choose from")
        if len(self._items) == 1:
            return next(iter(self._items.values()))
        members = tuple(Annotated[cls, Tag(name)] for name, cls in self._items.items())
        return Annotated[Union[members], Discriminator(tag)]  # noqa: UP007 - built at run time


def literal_name(name: str, cls: Any) -> str | None:
    """A `check` for plug-ins that are config models: their `name` field accepts the name they register under."""
    field = getattr(cls, "model_fields", {}).get("name")
    if field is None or name not in getattr(field.annotation, "__args__", ()):
        return f"its config's `name` field must be Literal[{name!r}, ...]"
    return None
