"""Errors that reach the user as one clear line each, never as a traceback."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["ConfigError", "ConfigProblem", "EmitterError", "format_path", "one_line", "redact_uri"]

_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)} | {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}


def one_line(text: str) -> str:
    """``text`` with control characters (newlines, NUL, ...) written as escapes: a message stays one line."""
    return text.translate(_CONTROL)


def format_path(path: Sequence[str | int]) -> str:
    """Render a key path as ``a -> b -> c`` (the form every message uses)."""
    return " -> ".join(str(p) for p in path) if path else "(top level)"


class EmitterError(Exception):
    """Base class for errors the CLI reports as one line and a non-zero exit code."""

    exit_code = 1


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in one input file: where it is and what is wrong with which value."""

    source: str
    path: tuple[str | int, ...]
    message: str

    def __str__(self) -> str:
        return one_line(f"{self.source}: {format_path(self.path)}: {self.message}")


class ConfigError(EmitterError):
    """One or more problems found in an input file (workflow, scenario, options)."""

    exit_code = 2

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def one(cls, source: str, path: Sequence[str | int], message: str) -> ConfigError:
        return cls([ConfigProblem(source, tuple(path), message)])


# A query value that may be a credential (headers=authorization=Bearer%20..., sasl.password=...), and the
# password of a URI's user info.
_SECRET_QUERY = re.compile(r"([?&](?:headers|[^=&#]*(?:password|secret|token|credential|jaas)[^=&#]*)=)[^&#]*", re.I)
_SECRET_USERINFO = re.compile(r"^([^:/?#]+://[^:/?#@]*):[^/?#@]*@")


def redact_uri(uri: str) -> str:
    """``uri`` as messages show it: header values, passwords, tokens and secrets replaced by ``***``."""
    return _SECRET_USERINFO.sub(r"\1:***@", _SECRET_QUERY.sub(r"\1***", uri))
