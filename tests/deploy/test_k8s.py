"""deploy/k8s: every resource valid against the Kubernetes API schemas, and the Indexed Job's contract run
locally: its pods, started as processes with the Job's own arguments and environment, emit together
what one process emits.

Only what a cluster changes is changed here: the image's paths (/scenario, /app) point into the repository,
and the environment that names a destination and a pace (EMITTER_SINK, EMITTER_SPEED, EMITTER_METRICS_PORT)
points at a local file, ``max`` and a free port.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from emitter.cli import build_parser
from emitter.clients.kafka import parse_kafka_uri

from ..conftest import ROOT

K8S = ROOT / "deploy" / "k8s"
KUBERNETES = "1.37.0"  # the newest schemas kubernetes-validate ships


def _resources() -> list[dict[str, Any]]:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kust["kind"] == "Kustomization"
    docs = []
    for name in kust["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    return docs


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in _resources() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def test_every_resource_is_valid_against_the_api_schemas() -> None:
    import kubernetes_validate

    docs = _resources()
    assert {d["kind"] for d in docs} >= {"Job", "ConfigMap", "Secret"}
    for d in docs:
        kubernetes_validate.validate(d, KUBERNETES, strict=True)  # raises ValidationError, naming the field


def test_a_schema_violation_is_caught() -> None:
    import kubernetes_validate

    job = _one("Job")
    job["spec"]["completionMode"] = ["Indexed"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, KUBERNETES, strict=True)


def _pod() -> tuple[dict[str, Any], list[str], dict[str, str], int]:
    """The Job's container, its arguments, its environment (ConfigMaps and Secrets resolved), and N."""
    job = _one("Job")
    spec = job["spec"]
    c = spec["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for ref in c.get("envFrom", []):
        env |= _one("ConfigMap", ref["configMapRef"]["name"])["data"]
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = _one("Secret", ref["name"])["stringData"][ref["key"]]
    shard = c["args"][c["args"].index("--shard") + 1]
    m = re.fullmatch(r"\$\(JOB_COMPLETION_INDEX\)/(\d+)", shard)
    assert m, f"--shard {shard}: expected $(JOB_COMPLETION_INDEX)/N"
    n = int(m[1])
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == n
    return c, c["args"], env, n


def test_the_pods_arguments_and_settings_parse_with_the_real_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    c, args, env, n = _pod()
    parsed = build_parser().parse_args([a.replace("$(JOB_COMPLETION_INDEX)", "0") for a in args])
    assert parsed.command == "run" and parsed.shard == (0, n)
    monkeypatch.setenv("KAFKA_PASSWORD", env["KAFKA_PASSWORD"])  # (the Secret's, as the pod has it)
    parse_kafka_uri(env["EMITTER_SINK"], source="EMITTER_SINK")
    port = int(env["EMITTER_METRICS_PORT"])
    assert [p["containerPort"] for p in c["ports"]] == [port]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert Path(args[1]).parent.as_posix() == mounts["scenario"]


def _local(tmp: Path) -> tuple[list[str], dict[str, str], int]:
    """The pod's command as a local process: paths mapped into the repository, destination a file."""
    _, args, env, n = _pod()
    scenario = _one("ConfigMap", "emitter-scenario")["data"]["scenario.yaml"]
    (tmp / "scenario").mkdir()
    (tmp / "scenario" / "scenario.yaml").write_text(scenario.replace("/app/", f"{ROOT}/"))
    argv = [a.replace("/scenario/", f"{tmp}/scenario/") for a in args]
    env = os.environ | env | {"EMITTER_SPEED": "max", "EMITTER_METRICS_PORT": "127.0.0.1:0"}
    return argv, env, n


def _run(argv: list[str], env: dict[str, str], out: Path) -> None:
    """One pod: runs to its summary; then the hold (--metrics-hold) is ended as Kubernetes ends a pod, by
    SIGTERM; the exit code is the run's."""
    err = out.with_suffix(".err")
    with err.open("w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "emitter", *argv], env=env | {"EMITTER_SINK": f"file:{out}"}, stderr=fh
        )
    try:
        deadline = time.monotonic() + 240
        while proc.poll() is None and "serving the final metrics" not in err.read_text():
            assert time.monotonic() < deadline, err.read_text()
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, err.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_jobs_pods_emit_together_what_one_process_emits(tmp_path: Path) -> None:
    argv, env, n = _local(tmp_path)
    union: list[bytes] = []
    for i in range(n):
        out = tmp_path / f"pod{i}.jsonl"
        _run([a.replace("$(JOB_COMPLETION_INDEX)", str(i)) for a in argv], env, out)
        part = out.read_bytes().splitlines()
        assert part, f"pod {i} emitted nothing"
        union += part
    k = argv.index("--shard")
    single = tmp_path / "single.jsonl"
    _run(argv[:k] + argv[k + 2 :], env, single)
    want = single.read_bytes().splitlines()
    assert len(want) > 100_000  # enough blocks of sessions that every pod walks some
    assert sorted(union) == sorted(want)
