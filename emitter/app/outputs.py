"""Files a command writes besides its stream (JSON and HTML reports): checked before the work starts, so
an hour of traffic is not lost to a path that cannot be written at its end."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import ConfigError

__all__ = ["check_writable", "write_html"]


def check_writable(path: str, flag: str = "--report") -> None:
    """A one-line input error unless ``path`` (given as ``flag``) can be written: checked before the work."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError.one(flag, (path,), "is a directory, not a file")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError.one(flag, (path,), f"no such directory {str(parent)!r}")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise ConfigError.one(flag, (path,), "cannot write there (permission denied)")


def write_html(path: str, flag: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError.one(flag, (path,), f"cannot write: {exc.strerror}") from None
    print(f"emitter: HTML report written to {path}", file=sys.stderr, flush=True)
