"""``emitter check``: workflow and scenario files checked without running them, every problem one line."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import ConfigError
from ..inputs.scenario import is_scenario, parse_scenario
from ..inputs.workflow import parse_workflow
from ..inputs.yamlio import load_yaml_file

__all__ = ["check_files"]

EXIT_USAGE = 2


def check_files(files: list[str]) -> int:
    """0 when every file is valid; 2 (after printing every problem of every file) otherwise."""
    code = 0
    for f in files:
        try:
            data = load_yaml_file(f)
            if is_scenario(data):
                sc = parse_scenario(data, f, base=Path(f).resolve().parent)
                warnings = [w for wf, _ in sc.workflows for w in wf.warnings]
                summary = (
                    f"scenario {sc.name!r}, workflows {', '.join(repr(wf.name) for wf, _ in sc.workflows)}, "
                    f"{sc.load.describe()}, {len(sc.dynamics.faults)} faults, {len(sc.random_faults)} random fault "
                    f"specs"
                )
            else:
                wf = parse_workflow(data, f)
                warnings = list(wf.warnings)
                n_edges = sum(1 for r in wf.transitions.values() for p in r.values() if p > 0)
                summary = (
                    f"workflow {wf.name!r}, {len(wf.states)} endpoints, {n_edges} transitions, "
                    f"{len(wf.exit_points)} exit points, {len(wf.user_types)} user types"
                )
        except ConfigError as exc:
            for prob in exc.problems:
                print(str(prob), file=sys.stderr)
            code = EXIT_USAGE
            continue
        for w in warnings:
            print(f"warning: {w}", file=sys.stderr)
        print(f"ok: {f}: {summary}")
    return code
