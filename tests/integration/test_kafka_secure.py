"""Against the real secured broker (``KAFKA_SECURITY=sasl_ssl deploy/local/kafka.sh start``): SASL_SSL with
SCRAM-SHA-512 over TLS from a local CA, with ACLs. The sink, the truth writer and the validator work over it; a
wrong password, an untrusted certificate and an ACL denial each end in one clear line and a non-zero exit within
seconds, without retrying; no secret appears in any output."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from ..conftest import ROOT, WORKFLOWS, run_cli
from .kafka_util import sink_counts

pytestmark = [pytest.mark.kafka, pytest.mark.xdist_group("kafka-secure")]
ECOM = str(WORKFLOWS / "ecommerce.yaml")
BASE = ["--seed", "5", "--start", "2026-02-01T00:00:00Z", "--progress", "off", "--speed", "max"]


def _paths() -> dict[str, str]:
    env = dict(os.environ, KAFKA_SECURITY="sasl_ssl")
    env.pop("KAFKA_PORT", None)
    env.pop("KAFKA_CONTROLLER_PORT", None)
    st = subprocess.run([str(ROOT / "deploy/local/kafka.sh"), "status"], env=env, capture_output=True, check=False)
    if st.returncode != 0:
        pytest.fail(
            "no secured Kafka broker answers: start it with KAFKA_SECURITY=sasl_ssl deploy/local/kafka.sh start "
            "(scripts/test.sh does this), or deselect these tests with -m 'not kafka'"
        )
    out = subprocess.run(
        [str(ROOT / "deploy/local/kafka.sh"), "paths"], env=env, capture_output=True, text=True, check=True
    )
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.stdout.splitlines())}


@pytest.fixture(scope="module")
def secure() -> dict[str, str]:
    p = _paths()
    for line in Path(p["users"]).read_text().splitlines():
        k, _, v = line.partition("=")
        p[k] = v
    return p


def _uri(p: dict[str, str], topic: str, *, user: str = "emitter", password: str | None = None, ca: str = "ca") -> str:
    pw = password if password is not None else "env:KAFKA_TEST_PASSWORD"
    return (
        f"kafka://{p['bootstrap']}/{topic}?security.protocol=SASL_SSL&sasl.mechanism=SCRAM-SHA-512"
        f"&sasl.username={user}&sasl.password={pw}&ssl.ca.location={p[ca]}"
    )


def _env(p: dict[str, str], user: str = "emitter") -> dict[str, str]:
    return {"KAFKA_TEST_PASSWORD": p[f"KAFKA_{user.upper()}_PASSWORD"]}


def _secrets(p: dict[str, str]) -> list[str]:
    return [v for k, v in p.items() if k.endswith("_PASSWORD")] + [
        Path(p["ca"]).parent.joinpath("store.pass").read_text().strip()
    ]


def _text(proc: subprocess.CompletedProcess[bytes]) -> str:
    return proc.stdout.decode() + proc.stderr.decode()


async def _read(p: dict[str, str], topic: str, idle: float = 3.0) -> list[Any]:
    """An independent read-back: aiokafka's consumer with its own SASL_SSL settings, no group."""
    from aiokafka import AIOKafkaConsumer

    c = AIOKafkaConsumer(
        topic,
        bootstrap_servers=p["bootstrap"],
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="emitter",
        sasl_plain_password=p["KAFKA_EMITTER_PASSWORD"],
        ssl_context=ssl.create_default_context(cafile=p["ca"]),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await c.start()
    out: list[Any] = []
    try:
        last = time.monotonic()
        while time.monotonic() - last < idle:
            for recs in (await c.getmany(timeout_ms=300, max_records=20_000)).values():
                out += recs
                if recs:
                    last = time.monotonic()
    finally:
        await c.stop()
    return out


def _one_error(proc: subprocess.CompletedProcess[bytes], p: dict[str, str], *words: str) -> str:
    text = _text(proc)
    assert proc.returncode != 0, text
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if "error:" in line]
    assert len(errors) == 1, text
    for w in words:
        assert w in errors[0], errors[0]
    for secret in _secrets(p):
        assert secret not in text
    return errors[0]


def test_sink_truth_and_validator_over_sasl_ssl(secure: dict[str, str], tmp_path: Path) -> None:
    topic = f"sec-{uuid.uuid4().hex[:10]}"
    copy = tmp_path / "events.jsonl"
    run = run_cli(
        "run",
        ECOM,
        *BASE,
        "--sessions",
        "400",
        "--sink",
        f"file:{copy}",
        "--sink",
        _uri(secure, topic) + "&partitions=3&retention.ms=-1",
        "--truth",
        _uri(secure, topic + "-truth"),
        env=_env(secure),
    )
    text = _text(run)
    assert run.returncode == 0, text
    for secret in _secrets(secure):
        assert secret not in text
    assert "sasl.password=***" in text
    emitted = [json.loads(x)["event_id"] for x in copy.read_bytes().splitlines()]
    counts = sink_counts(run.stderr.decode(), "kafka://")
    assert counts["acknowledged"] == len(emitted) > 1000 and counts["failed"] == counts["dropped"] == 0
    got = asyncio.run(_read(secure, topic))
    assert sorted(json.loads(r.value)["event_id"] for r in got) == sorted(emitted)
    truth = asyncio.run(_read(secure, topic + "-truth", idle=1.5))
    assert [json.loads(r.value)["type"] for r in truth][:1] == ["manifest"]

    for extra in ([], ["--group", f"sec-g-{uuid.uuid4().hex[:6]}"]):  # the raw reader, then a consumer group's
        v = run_cli("validate", ECOM, "--source", _uri(secure, topic), "--until-idle", "3", *extra, env=_env(secure))
        vt = _text(v)
        assert v.returncode == 0, vt
        assert "verdict: CONSISTENT" in v.stdout.decode(), vt
        assert f"{len(emitted):,} events" in vt or str(len(emitted)) in vt, vt
        for secret in _secrets(secure):
            assert secret not in vt


def _run(sink: str, *more: str) -> list[str]:
    """A 20-session run into ``sink`` (and whatever ``more`` adds)."""
    return ["run", ECOM, *BASE, "--sessions", "20", "--sink", sink, *more]


def _validate(uri: str, command: str) -> list[str]:
    group = ["--group", f"sec-g-{uuid.uuid4().hex[:6]}"] if command == "validate-group" else []
    return ["validate", ECOM, "--source", uri, "--until-idle", "2", *group]


COMMANDS = ["run", "validate", "validate-group"]  # the sink; the validator's raw reader; its consumer group


@pytest.mark.parametrize("command", COMMANDS)
def test_wrong_password_fails_fast_without_retrying(secure: dict[str, str], command: str) -> None:
    topic = f"sec-{uuid.uuid4().hex[:10]}"
    uri = _uri(secure, topic, password="not-the-password") + "&startup.wait.ms=60000"
    args = _run(uri) if command == "run" else _validate(_uri(secure, topic, password="not-the-password"), command)
    t0 = time.monotonic()
    proc = run_cli(*args, timeout=60)
    took = time.monotonic() - t0
    line = _one_error(proc, secure, "authentication failed for user 'emitter'", "SCRAM-SHA-512")
    assert "not-the-password" not in _text(proc)
    assert took < 15, f"{took:.1f} s: {line}"  # startup.wait.ms=60000 would retry for a minute


@pytest.mark.parametrize("command", COMMANDS)
def test_untrusted_certificate_is_refused(secure: dict[str, str], command: str) -> None:
    topic = f"sec-{uuid.uuid4().hex[:10]}"
    uri = _uri(secure, topic, ca="other-ca")
    args = _run(uri + "&startup.wait.ms=60000") if command == "run" else _validate(uri, command)
    t0 = time.monotonic()
    proc = run_cli(*args, env=_env(secure), timeout=60)
    _one_error(proc, secure, "TLS: the broker's certificate is not trusted", secure["other-ca"])
    assert time.monotonic() - t0 < 15


def test_acl_denials(secure: dict[str, str], tmp_path: Path) -> None:
    # emitter may not create (or write) a topic outside its "sec-" prefix
    proc = run_cli(*_run(_uri(secure, "other-topic")), env=_env(secure))
    _one_error(proc, secure, "not authorized to create topic 'other-topic'", "user 'emitter'")
    # the stranger authenticates, but no ACL names it
    proc = run_cli(*_run(_uri(secure, "sec-x", user="stranger")), env=_env(secure, "stranger"))
    _one_error(proc, secure, "not authorized", "user 'stranger'")
    # nor may it read what emitter wrote
    topic = f"sec-{uuid.uuid4().hex[:10]}"
    ok = run_cli(*_run(_uri(secure, topic)), env=_env(secure))
    assert ok.returncode == 0, _text(ok)
    t0 = time.monotonic()
    proc = run_cli(*_validate(_uri(secure, topic, user="stranger"), "validate"), env=_env(secure, "stranger"))
    _one_error(proc, secure, "not authorized to read topic", "user 'stranger'")
    assert time.monotonic() - t0 < 15
    # in a consumer group: the stranger may not read the topic, emitter may not join a group outside "sec-"
    proc = run_cli(*_validate(_uri(secure, topic, user="stranger"), "validate-group"), env=_env(secure, "stranger"))
    _one_error(proc, secure, "not authorized to read topic", "user 'stranger'")
    proc = run_cli(*_validate(_uri(secure, topic), "validate"), "--group", "other-group", env=_env(secure))
    _one_error(proc, secure, "not authorized to join consumer group 'other-group'", "user 'emitter'")
    # and the truth writer reports its own denial
    proc = run_cli(*_run("null:", "--truth", _uri(secure, "other-truth")), env=_env(secure))
    _one_error(proc, secure, "truth: kafka: not authorized", "'other-truth'")


def test_plaintext_client_on_the_secured_listener(secure: dict[str, str]) -> None:
    proc = run_cli(*_run(f"kafka://{secure['bootstrap']}/sec-plain?startup.wait.ms=60000"))
    _one_error(proc, secure, "does the listener expect TLS or SASL")
