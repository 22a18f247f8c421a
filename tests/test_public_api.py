"""The public surface is deliberate: adding or removing a name should be a visible change."""

from __future__ import annotations

import emitter


def test_public_names_are_pinned() -> None:
    assert sorted(emitter.__all__) == [
        "Assembler",
        "ConfigError",
        "Dataset",
        "Dynamics",
        "EmitterError",
        "Fault",
        "Learned",
        "Load",
        "Reactions",
        "RetryPolicy",
        "RunConfig",
        "Session",
        "Simulation",
        "Speed",
        "Workflow",
        "__version__",
        "build_report",
        "compare",
        "generate",
        "learn",
        "load_scenario",
        "load_workflow",
        "parse_workflow",
        "run_async",
        "run_sync",
        "save_workflow",
        "workflow",
        "workflow_yaml",
    ]
    for name in emitter.__all__:
        assert getattr(emitter, name) is not None


def test_the_docstring_example_runs(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import io

    from .conftest import WORKFLOWS

    monkeypatch.chdir(tmp_path)
    wf = emitter.load_workflow(WORKFLOWS / "ecommerce.yaml")
    code = emitter.run_sync(
        emitter.RunConfig(
            wf,
            seed=7,
            speed=emitter.Speed(None),
            load=emitter.Load(sessions=100),
            sinks=["file:out.jsonl"],
            progress="off",
        ),
        stderr=io.StringIO(),
        install_signals=False,
    )
    assert code == 0
    assert len((tmp_path / "out.jsonl").read_bytes().splitlines()) > 100
