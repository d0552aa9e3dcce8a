"""A YAML mapping written line by line with a comment on each value (how `raytune-llm init` guessed it): PyYAML
drops comments, so the mapping is emitted here, each value as one-line YAML that PyYAML reads back."""

from __future__ import annotations

import json
import math
import textwrap
from typing import Any

import yaml

COMMENT_AT, WIDTH = 32, 118


class _Dumper(yaml.SafeDumper):
    pass


def _float(dumper: yaml.SafeDumper, value: float) -> yaml.ScalarNode:
    """Small floats as 2.0e-5 (what a learning rate is read as), the rest as Python writes them."""
    if value == 0 or not math.isfinite(value) or 1e-2 <= abs(value) < 1e6:
        return dumper.represent_float(value)
    mantissa, exponent = f"{value:.6e}".split("e")
    mantissa = mantissa.rstrip("0") + ("0" if mantissa.rstrip("0").endswith(".") else "")
    return dumper.represent_scalar("tag:yaml.org,2002:float", f"{mantissa}e{int(exponent):+d}")


_Dumper.add_representer(float, _float)


def flow(value: Any) -> str:
    """A value on one line: a flow mapping or list, a scalar; text with line breaks double-quoted."""
    if isinstance(value, str) and "\n" in value:
        return json.dumps(value)
    text = yaml.dump({"k": value}, Dumper=_Dumper, default_flow_style=True, width=2**31, sort_keys=False)
    return text.strip()[len("{k: "):-1]


class Block:
    """A YAML mapping written line by line, each value with the comment that says where it came from."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, Any, str]] = []  # (key, value or Block, comment); key "" = a comment line

    def set(self, key: str, value: Any, why: str = "") -> None:
        self.rows.append((key, value, why))

    def block(self, key: str, why: str = "") -> Block:
        child = Block()
        self.rows.append((key, child, why))
        return child

    def note(self, text: str) -> None:
        self.rows.append(("", None, text))

    def lines(self, indent: int = 0) -> list[str]:
        pad, out = " " * indent, []
        for key, value, why in self.rows:
            if not key:
                out += textwrap.wrap(why, WIDTH - indent, initial_indent=pad + "# ", subsequent_indent=pad + "#   ")
                continue
            line = f"{pad}{key}:" + ("" if isinstance(value, Block) else f" {flow(value)}")
            if why and len(line.ljust(COMMENT_AT)) + 3 + len(why) <= WIDTH:
                line = f"{line.ljust(COMMENT_AT)}  # {why}"
            elif why:
                out += textwrap.wrap(why, WIDTH - indent, initial_indent=pad + "# ", subsequent_indent=pad + "#   ")
            out.append(line)
            if isinstance(value, Block):
                out += value.lines(indent + 2)
        return out
