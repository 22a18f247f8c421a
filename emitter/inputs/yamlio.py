"""YAML reading with the checks PyYAML leaves out: duplicate keys, and errors that name file and line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, ConfigProblem

__all__ = ["dump_yaml", "load_yaml_file", "load_yaml_text"]


_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when built in


class _StrictLoader(_Base):  # type: ignore[misc,valid-type]
    """A safe loader that refuses duplicate mapping keys instead of keeping the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:  # YAML's complex keys (? [a, b]): nothing here is keyed by a list or a mapping
            kind = {"list": "a list", "dict": "a mapping"}.get(type(key).__name__, type(key).__name__)
            what = f"a key must be a string or a number, not {kind}"
            raise yaml.constructor.ConstructorError(None, None, what, key_node.start_mark) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return dict(loader.construct_pairs(node, deep=deep))


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# YAML 1.1 (PyYAML's) reads 1e9 and 2E-3 as strings: numbers with an exponent and no dot are floats here,
# as in YAML 1.2 and JSON (a user writing factor: 1e9 means a number)
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"), list("-+0123456789.")
)

# YAML 1.1 also reads on/off/yes/no as booleans (a retry policy's `on: [503]` became the key True): only
# true and false are booleans here, as in YAML 1.2
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in pairs if tag != "tag:yaml.org,2002:bool"]
    for first, pairs in _StrictLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml_text(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        what = exc.problem or exc.context or "invalid YAML"
        raise ConfigError([ConfigProblem(source, (where,), f"YAML error: {what}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem(source, (), f"YAML error: {exc}")]) from None


MAX_FILE_BYTES = 16 << 20  # a workflow or scenario file (a 10,000-state workflow is about 1 MB)


def load_yaml_file(path: str | Path) -> Any:
    p = Path(path)
    try:
        size = p.stat().st_size if p.is_file() else 0
        if size > MAX_FILE_BYTES:
            what = f"the file is {size / 2**20:,.1f} MiB: at most {MAX_FILE_BYTES >> 20} MiB"
            raise ConfigError([ConfigProblem(str(path), (), what)])
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(str(path), (), "file not found")]) from None
    except IsADirectoryError:
        raise ConfigError([ConfigProblem(str(path), (), "is a directory, not a file")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigProblem(str(path), (), f"not UTF-8 text ({exc.reason})")]) from None
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(path), (), f"cannot read: {exc.strerror}")]) from None
    return load_yaml_text(text, str(path))


class _Dumper(yaml.SafeDumper):
    pass


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str_presenter)


def dump_yaml(data: Any) -> str:
    """Block-style YAML with keys in the order given (so written files read like hand-written ones)."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=110)
