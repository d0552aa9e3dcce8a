"""Errors a user can fix. The CLI prints them as one line each and exits 2, without a traceback."""

from __future__ import annotations

from dataclasses import dataclass


class UserError(Exception):
    """Bad input: the message names the problem and the fix."""


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(UserError):
    """Every problem found in a config, reported at once."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        n = len(problems)
        lines = [f"{source}: {n} problem{'s' if n != 1 else ''}"]
        lines += [f"  {p}" for p in problems]
        super().__init__("\n".join(lines))
