"""The long fuzz run: many mutated bundled files through ``emitter check`` and ``emitter run`` (tests/fuzz.py).

    .venv/bin/python scripts/fuzz.py [--cases 4000] [--seed 1] [--limit-s 20] [--specs | --commands]

``--specs``: workflows and scenarios drawn from the declared types (``fuzz.spec_file``) instead of mutated
bundled files. ``--commands``: validate, score, fit and report on broken stream records with hostile options.

Prints the cases tried, how many ``run`` reached, and each failure class (command and error) with its count
and one example file kept under .local/fuzz/. Exit 1 when any case failed. Its figures are in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

from tests import fuzz  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--limit-s", type=int, default=20, help="a case taking longer than this is a hang")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--specs", action="store_true", help="files drawn from the declared specs, not mutated")
    mode.add_argument("--commands", action="store_true", help="fuzz the other commands on broken stream records")
    a = ap.parse_args()
    keep = ROOT / ".local" / "fuzz"
    keep.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="emitter-fuzz-"))
    classes: collections.Counter[tuple[str, str]] = collections.Counter()
    counts = collections.Counter[str]()
    cases = settings(
        max_examples=a.cases,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )

    @seed(a.seed)
    @cases
    @given(fuzz.spec_file() if a.specs else fuzz.mutated())
    def one(case: tuple[Path, str]) -> None:
        src, text = case
        counts["cases"] += 1
        outs = fuzz.run_case(fuzz.stage(src, text, tmp), a.limit_s, cwd=tmp)
        counts["ran"] += len(outs) > 1
        counts["refused"] += outs[0].code == 2
        for o in outs:
            if not o.error:
                continue
            key = (o.command, o.error[:100])
            if not classes[key]:
                (keep / f"failure-{len(classes)}-{src.name}").write_text(text, errors="surrogatepass")
            classes[key] += 1

    @seed(a.seed)
    @cases
    @given(fuzz.command_case())
    def command(case: tuple[list[str], dict[str, bytes]]) -> None:
        argv, files = case
        counts["cases"] += 1
        with tempfile.TemporaryDirectory(dir=tmp) as d:
            bad = fuzz.command_failures(argv, files, Path(d), a.limit_s)
        for o in bad:
            classes[(o.command, o.error[:100])] += 1
        counts[argv[0]] += 1

    t0 = time.perf_counter()
    if a.commands:
        command()
        wall = time.perf_counter() - t0
        per = ", ".join(f"{counts[c]:,} {c}" for c in sorted(fuzz.COMMAND_CODES))
        print(
            f"fuzz: {counts['cases']:,} command cases in {wall:.0f} s (seed {a.seed}): {per}; "
            f"{sum(classes.values())} failure(s) in {len(classes)} class(es)"
        )
        for (cmd, err), n in classes.most_common():
            print(f"  {n:5d}  {cmd}: {err}")
        return 1 if classes else 0
    one()
    wall = time.perf_counter() - t0
    failed = sum(classes.values())
    print(
        f"fuzz: {counts['cases']:,} {'spec-drawn' if a.specs else 'mutated'} cases in {wall:.0f} s (seed {a.seed}): "
        f"{counts['refused']:,} refused by check "
        f"with exit 2, {counts['ran']:,} accepted and run; {failed} failure(s) in {len(classes)} class(es)"
    )
    for (cmd, err), n in classes.most_common():
        print(f"  {n:5d}  {cmd}: {err}")
    if classes:
        print(f"examples: {keep}/failure-*")
    return 1 if classes else 0


if __name__ == "__main__":
    raise SystemExit(main())
