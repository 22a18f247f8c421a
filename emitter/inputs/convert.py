"""Data against declared specs: every problem found at once, each naming its key path and value.

Input files are described by msgspec Structs (:mod:`.specs`, and the core's own fault, profile, retry and
reaction types). msgspec stops at the first error; a user fixing a file wants them all. :func:`convert`
walks the data against the declared types (read through :func:`msgspec.inspect.type_info`) and builds
the Structs itself, recording one :class:`~emitter.errors.ConfigProblem` per bad value and carrying on.
A value that could not be converted is left as :data:`INVALID` in its container, so later (semantic)
checks skip what is already reported instead of piling up consequences.

Leaves follow the declared constraints: ``Meta(ge=0, le=1)``, ``Meta(gt=0)``, ``Meta(min_length=1)``;
``Meta(extra={"what": "a version string"})`` names the expected value in messages,
``Meta(extra={"range": "probability"})`` words a [0, 1] range as a probability, and ``Meta(extra={"parse": NAME})``
runs a registered text parser (durations, timestamps, speeds) whose ``ValueError`` becomes the message
(with ``"whole": True`` it takes lists and mappings too).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

import msgspec
from msgspec import inspect as mi

from ..core.limits import MAX_NAME
from ..errors import ConfigError, ConfigProblem

__all__ = ["INVALID", "Path", "Problems", "convert", "register_parser", "show", "struct_valid", "valid"]

Path = tuple[str | int, ...]


class _Invalid:
    __slots__ = ()

    def __repr__(self) -> str:
        return "INVALID"

    def __bool__(self) -> bool:
        return False


INVALID: Any = _Invalid()
"""What a value that could not be converted becomes (its problem is already recorded)."""

_PARSERS: dict[str, Callable[[Any], Any]] = {}


def register_parser(name: str, fn: Callable[[Any], Any]) -> None:
    """Make ``Meta(extra={"parse": name})`` leaves go through ``fn`` (a ValueError is the problem)."""
    _PARSERS[name] = fn


def show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def valid(*values: Any) -> bool:
    """True when none of ``values`` is INVALID (recursively through dicts and lists)."""
    for v in values:
        if v is INVALID:
            return False
        if isinstance(v, dict) and not valid(*v.values()):
            return False
        if isinstance(v, list | tuple) and not valid(*v):
            return False
    return True


def struct_valid(s: Any) -> bool:
    """True when no field of the Struct ``s`` is INVALID (its own checks can then run)."""
    return s is not INVALID and all(getattr(s, k) is not INVALID for k in s.__struct_fields__)


class Problems:
    """Problems of one source, collected; :meth:`raise_if_any` ends a load with all of them."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[ConfigProblem] = []
        self.warnings: list[ConfigProblem] = []

    def error(self, path: Path, message: str) -> None:
        self.problems.append(ConfigProblem(self.source, tuple(path), message))

    def warn(self, path: Path, message: str) -> None:
        self.warnings.append(ConfigProblem(self.source, tuple(path), message))

    def extend(self, problems: list[ConfigProblem] | tuple[ConfigProblem, ...]) -> None:
        self.problems.extend(problems)

    def raise_if_any(self) -> None:
        if self.problems:
            raise ConfigError(self.problems)


@cache
def _info(typ: Any) -> mi.Type:
    return mi.type_info(typ)


def convert(data: Any, typ: Any, probs: Problems, path: Path = ()) -> Any:
    """``data`` as an instance of the declared ``typ``, or INVALID; every problem goes to ``probs``."""
    return _walk(data, _info(typ), probs, path, {})


def _walk(data: Any, t: mi.Type, probs: Problems, path: Path, extra: dict[str, Any]) -> Any:
    if isinstance(t, mi.Metadata):
        extra = {**extra, **(t.extra or {})}
        return _walk(data, t.type, probs, path, extra)
    parse = extra.get("parse")
    if parse is not None:
        if extra.get("whole") or not isinstance(data, Mapping | list):
            try:
                return _PARSERS[parse](data)
            except ValueError as exc:
                probs.error(path, str(exc))
                return INVALID
        if isinstance(t, mi.AnyType):  # a value parsed from one scalar, given a list or a mapping
            probs.error(path, f"expected {extra.get('what') or 'a single value'}, got {show(data)}")
            return INVALID
    if isinstance(t, mi.AnyType):
        return data
    if isinstance(t, mi.StructType):
        return _struct(data, t, probs, path, extra)
    if isinstance(t, mi.UnionType):
        return _union(data, t, probs, path, extra)
    if isinstance(t, mi.DictType):
        if not isinstance(data, Mapping):
            probs.error(path, f"expected {extra.get('what', 'a mapping')}, got {show(data)}")
            return INVALID
        out: dict[Any, Any] = {}
        for k, v in data.items():
            key = _key(k, t.key_type, probs, (*path, str(k)), extra)
            if key is INVALID:
                continue
            out[key] = _walk(v, t.value_type, probs, (*path, key if isinstance(key, str) else str(k)), {})
        return out
    if isinstance(t, mi.ListType | mi.VarTupleType | mi.SetType | mi.FrozenSetType):
        if not isinstance(data, list | tuple):
            probs.error(path, f"expected {extra.get('what', 'a list')}, got {show(data)}")
            return INVALID
        if isinstance(t, mi.ListType | mi.VarTupleType) and t.max_length is not None and len(data) > t.max_length:
            # refused before the items are converted: checking tens of thousands of them takes a while
            probs.error(path, f"expected at most {t.max_length:,} {extra.get('items', 'items')}, got {len(data):,}")
            return INVALID
        items = [_walk(v, t.item_type, probs, (*path, i), {}) for i, v in enumerate(data)]
        return tuple(items) if isinstance(t, mi.VarTupleType) else items
    if isinstance(t, mi.TupleType):
        if not isinstance(data, list | tuple) or len(data) != len(t.item_types):
            probs.error(path, f"expected {extra.get('what', f'a list of {len(t.item_types)}')}, got {show(data)}")
            return INVALID
        return tuple(
            _walk(v, it, probs, (*path, i), {}) for i, (v, it) in enumerate(zip(data, t.item_types, strict=True))
        )
    return _leaf(data, t, probs, path, extra)


def _key(k: Any, t: mi.Type, probs: Problems, path: Path, extra: dict[str, Any]) -> Any:
    if isinstance(t, mi.AnyType):
        return k
    if isinstance(t, mi.IntType):
        if isinstance(k, int) and not isinstance(k, bool):
            v = k
        elif isinstance(k, str) and k.isdigit():
            v = int(k)
        else:
            probs.error(path, f"expected {extra.get('key_what', 'an integer')}, got {show(k)}")
            return INVALID
        return _leaf(v, t, probs, path, {"what": extra.get("key_what")} if extra.get("key_what") else {})
    if not isinstance(k, str) or not k:
        probs.error(path, f"expected {extra.get('key_what', 'a non-empty string')} as a name, got {show(k)}")
        return INVALID
    if len(k) > MAX_NAME:
        probs.error((*path[:-1], show(k)), f"a name of {len(k):,} characters: at most {MAX_NAME:,}")
        return INVALID
    return k


def _struct(data: Any, t: mi.StructType, probs: Problems, path: Path, extra: dict[str, Any]) -> Any:
    cls = t.cls
    if data is None and getattr(cls, "NONE_IS_EMPTY", False):
        data = {}
    if not isinstance(data, Mapping):
        what = extra.get("what") or getattr(cls, "WHAT", "a mapping")
        probs.error(path, f"expected {what}, got {show(data)}")
        return INVALID
    fields = {f.encode_name: f for f in t.fields}
    tag_field = t.tag_field
    allowed = [*([tag_field] if tag_field else []), *fields]
    if t.forbid_unknown_fields:
        for key in data:
            if key not in fields and (tag_field is None or key != tag_field):  # (a YAML null key is not "no tag")
                probs.error((*path, str(key)), f"unknown key {show(key)} (expected one of: {', '.join(allowed)})")
    kwargs: dict[str, Any] = {}
    for enc, f in fields.items():
        if enc in data:
            kwargs[f.name] = _walk(data[enc], f.type, probs, (*path, enc), {})
        elif f.required:
            probs.error((*path, enc), getattr(cls, "MISSING", "missing (required)"))
            kwargs[f.name] = INVALID
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:  # a __post_init__ refusing the combination
        probs.error(path, str(exc))
        return INVALID
    return obj


def _union(data: Any, t: mi.UnionType, probs: Problems, path: Path, extra: dict[str, Any]) -> Any:
    types = t.types
    structs = [x for x in types if isinstance(x, mi.StructType)]
    if data is None and any(isinstance(x, mi.NoneType) for x in types):
        return None
    if isinstance(data, Mapping):
        if len(structs) > 1:  # a tagged union: the tag picks the class
            tag = structs[0].tag_field
            value = data.get(tag, getattr(structs[0].cls, "DEFAULT_TAG", None))
            for s in structs:
                if s.tag == value:
                    return _struct(data, s, probs, path, extra)
            names = [str(s.tag) for s in structs]
            what = getattr(structs[0].cls, "TAG_WHAT", tag)
            probs.error(
                (*path, str(tag)),
                getattr(structs[0].cls, "TAG_ERROR", "unknown {what} {value} (expected one of: {names})").format(
                    what=what, value=show(value), names=", ".join(names)
                ),
            )
            return INVALID
        for x in types:
            if isinstance(x, mi.StructType | mi.DictType):
                return _walk(data, x, probs, path, extra)
    if isinstance(data, list | tuple):
        for x in types:
            if isinstance(x, mi.ListType | mi.VarTupleType | mi.TupleType):
                return _walk(data, x, probs, path, extra)
    for x in types:  # scalars: a declared parser takes any of them, else the first kind that takes it
        if isinstance(x, mi.Metadata) and (x.extra or {}).get("parse"):
            return _walk(data, x, probs, path, extra)
    for x in types:
        inner = x.type if isinstance(x, mi.Metadata) else x
        if _accepts(data, inner):
            return _walk(data, x, probs, path, extra)
    what = extra.get("what") or next(
        (getattr(s.cls, "WHAT", None) for s in structs if getattr(s.cls, "WHAT", None)), None
    )
    probs.error(path, f"expected {what or _describe(types)}, got {show(data)}")
    return INVALID


def _accepts(data: Any, t: mi.Type) -> bool:
    if isinstance(t, mi.IntType):
        return isinstance(data, int) and not isinstance(data, bool)
    if isinstance(t, mi.FloatType):
        return isinstance(data, int | float) and not isinstance(data, bool)
    if isinstance(t, mi.StrType):
        return isinstance(data, str)
    if isinstance(t, mi.BoolType):
        return isinstance(data, bool)
    if isinstance(t, mi.LiteralType):
        return data in t.values
    return False


def _describe(types: tuple[mi.Type, ...]) -> str:
    names = []
    for x in types:
        x = x.type if isinstance(x, mi.Metadata) else x
        names.append(
            "a number"
            if isinstance(x, mi.FloatType | mi.IntType)
            else "a string"
            if isinstance(x, mi.StrType)
            else "a list"
            if isinstance(x, mi.ListType | mi.VarTupleType | mi.TupleType)
            else "a mapping"
            if isinstance(x, mi.StructType | mi.DictType)
            else "true or false"
            if isinstance(x, mi.BoolType)
            else "null"
        )
    return " or ".join(dict.fromkeys(names))


def _leaf(data: Any, t: mi.Type, probs: Problems, path: Path, extra: dict[str, Any]) -> Any:
    what = extra.get("what")
    if isinstance(t, mi.FloatType | mi.IntType):
        is_int = isinstance(t, mi.IntType)
        if isinstance(data, bool) or not isinstance(data, int if is_int else int | float):
            probs.error(path, f"expected {what or ('an integer' if is_int else 'a number')}, got {show(data)}")
            return INVALID
        try:
            x = data if is_int else float(data)
        except OverflowError:  # an integer past any float
            probs.error(path, f"expected a finite number, got {show(data)}")
            return INVALID
        if not is_int and not math.isfinite(x):
            probs.error(path, f"expected a finite number, got {show(data)}")
            return INVALID
        if extra.get("range") == "probability" and not 0.0 <= x <= 1.0:
            probs.error(path, f"probability {show(data)} is not in [0, 1]")
            return INVALID
        noun = "an integer" if is_int else "a number"
        if t.gt is not None and not x > t.gt:
            probs.error(
                path,
                f"expected a positive number, got {show(data)}"
                if t.gt == 0
                else f"expected {noun} > {t.gt}, got {show(data)}",
            )
            return INVALID
        if t.ge is not None and not x >= t.ge:
            probs.error(path, f"expected {noun} >= {t.ge}, got {show(data)}")
            return INVALID
        if t.le is not None and not x <= t.le:
            probs.error(path, f"expected at most {t.le}, got {show(data)}")
            return INVALID
        if t.lt is not None and not x < t.lt:
            probs.error(path, f"expected {noun} < {t.lt}, got {show(data)}")
            return INVALID
        return x
    if isinstance(t, mi.StrType):
        if not isinstance(data, str) or (t.min_length and len(data) < t.min_length):
            probs.error(
                path, f"expected {what or ('a non-empty string' if t.min_length else 'a string')}, got {show(data)}"
            )
            return INVALID
        if t.max_length is not None and len(data) > t.max_length:
            probs.error(path, f"expected at most {t.max_length} characters, got {len(data):,}")
            return INVALID
        return data
    if isinstance(t, mi.BoolType):
        if not isinstance(data, bool):
            probs.error(path, f"expected true or false, got {show(data)}")
            return INVALID
        return data
    if isinstance(t, mi.NoneType):
        if data is not None:
            probs.error(path, f"expected null, got {show(data)}")
            return INVALID
        return None
    if isinstance(t, mi.LiteralType):
        if data not in t.values:
            probs.error(path, f"expected {what or ' or '.join(str(v) for v in t.values)}, got {show(data)}")
            return INVALID
        return data
    try:  # anything else msgspec knows how to convert
        return msgspec.convert(data, t.cls if hasattr(t, "cls") else Any)
    except msgspec.ValidationError as exc:
        probs.error(path, f"{exc}, got {show(data)}")
        return INVALID
