"""URL paths folded into route templates: ids (numbers, UUIDs, long hex or mixed tokens) become placeholders."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

__all__ = ["Folding", "fold_path"]

_NUMBER = re.compile(r"^\d+$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_HEX = re.compile(r"^(?=.*\d)[0-9a-fA-F]{8,}$")
_TOKEN = re.compile(r"^(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9_-]{16,}$")  # long mixed ids (base64url, ulids)


def _is_id(segment: str) -> bool:
    return bool(_NUMBER.match(segment) or _UUID.match(segment) or _HEX.match(segment) or _TOKEN.match(segment))


def fold_path(path: str) -> tuple[str, list[str]]:
    """The template of ``path`` and the values its placeholders took: ``/users/42/orders/7`` ->
    (``/users/{id}/orders/{id2}``, ``["42", "7"]``)."""
    parts = path.split("?", 1)[0].split("#", 1)[0].split("/")
    values: list[str] = []
    for i, seg in enumerate(parts):
        if seg and _is_id(seg):
            values.append(seg)
            parts[i] = "{id}" if len(values) == 1 else f"{{id{len(values)}}}"
    return "/".join(parts) or "/", values


@dataclass
class Folding:
    """What folding did, for the report: per template, how many paths and a few examples."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    values: dict[str, list[list[str]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, path: str) -> str:
        template, vals = fold_path(path)
        self.counts[template] += 1
        if vals:
            ex = self.examples[template]
            if len(ex) < 3 and path not in ex:
                ex.append(path)
            if len(self.values[template]) < 10_000:
                self.values[template].append(vals)
        return template

    def report(self) -> list[dict[str, object]]:
        return [
            {"template": t, "paths": n, "examples": self.examples.get(t, [])}
            for t, n in self.counts.most_common()
            if self.examples.get(t)
        ]
