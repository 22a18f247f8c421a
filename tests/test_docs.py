"""Documentation pages written as Python sessions are executed: every output they show is what runs."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

from .conftest import ROOT

PAGES = ["docs/notebook.md"]


@pytest.mark.parametrize("page", PAGES)
def test_page_runs_as_written(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    res = doctest.testfile(
        str(ROOT / page),
        module_relative=False,
        globs={"tmp": tmp_path},
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        verbose=False,
        report=True,
    )
    assert res.attempted > 20
    assert res.failed == 0, f"{res.failed} of {res.attempted} examples in {page} differ (see the output above)"
