"""docker-compose.yml (and the Dockerfile and collector config it uses) wired consistently.

Docker is not needed: the files are parsed and cross-checked. Every service has an image or a build;
the addresses the emitter and the validator use are listeners the broker advertises inside the
network; the emitter writes the topic the validator reads and kafka-init creates; published ports
are ports something listens on; the commands parse with the real command line; the paths they name
exist; the collector's exporters point at services that exist.
"""

from __future__ import annotations

import argparse
import re
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml

from emitter.cli import build_parser
from emitter.clients.kafka import parse_kafka_uri
from emitter.inputs.workflow import load_workflow

from ..conftest import ROOT

COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
# Jaeger v2 all-in-one: UI, OTLP gRPC/HTTP, remote sampling, Zipkin, health check
JAEGER_PORTS = {16686, 4317, 4318, 5778, 9411, 13133}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), "no services in docker-compose.yml"
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def env_of(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def command_of(svc: dict[str, Any]) -> list[str]:
    cmd = svc.get("command")
    assert cmd, "service has no command"
    return [str(c) for c in cmd] if isinstance(cmd, list) else str(cmd).split()


def listeners(value: str) -> dict[str, tuple[str, int]]:
    """``NAME://HOST:PORT,...`` -> {NAME: (HOST, PORT)} (empty host: all interfaces)."""
    out = {}
    for item in value.split(","):
        name, _, hostport = item.strip().partition("://")
        host, _, port = hostport.rpartition(":")
        out[name] = (host, int(port))
    return out


def container_ports(svc: dict[str, Any]) -> list[tuple[int | None, int]]:
    """Published ports as (host port, container port); short syntax "H:C", "C", "IP:H:C", or long syntax."""
    out: list[tuple[int | None, int]] = []
    for p in svc.get("ports", []):
        if isinstance(p, dict):
            out.append((int(p["published"]) if p.get("published") else None, int(p["target"])))
            continue
        parts = str(p).split("/")[0].split(":")
        out.append((int(parts[-2]) if len(parts) > 1 else None, int(parts[-1])))
    return out


def hostport(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host, int(port)


def service_hosts(services: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Names a container answers to on the compose network -> service name."""
    names = {}
    for name, svc in services.items():
        names[name] = name
        if svc.get("hostname"):
            names[svc["hostname"]] = name
        if svc.get("container_name"):
            names[svc["container_name"]] = name
    return names


def kafka_service(services: dict[str, dict[str, Any]]) -> str:
    found = [n for n, s in services.items() if "KAFKA_PROCESS_ROLES" in env_of(s)]
    assert len(found) == 1, f"expected one broker service (with KAFKA_PROCESS_ROLES), found {found}"
    return found[0]


def emitter_services(services: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Services running the emitter image -> their command (run / validate / check)."""
    return {
        n: command_of(s)
        for n, s in services.items()
        if s.get("command") and command_of(s)[0] in ("run", "validate", "check")
    }


def parsed_command(cmd: list[str]) -> argparse.Namespace:
    try:
        return build_parser().parse_args(cmd)
    except SystemExit as exc:  # argparse exits on a usage error
        pytest.fail(f"the emitter command line rejects {cmd}: exit {exc.code}")


def kafka_uris(cmd: list[str]) -> list[str]:
    return [a for a in cmd if a.startswith("kafka://")]


def uri_target(uri: str) -> tuple[str, int, str]:
    u = urllib.parse.urlsplit(uri)
    host, port = hostport(u.netloc)
    return host, port, u.path.lstrip("/")


def init_command(services: dict[str, dict[str, Any]]) -> str:
    found = [s for n, s in services.items() if "init" in n]
    assert found, "no topic-creating init service"
    return " ".join(command_of(found[0]))


# --------------------------------------------------------------------------- tests


def test_every_service_has_an_image_or_a_build(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        assert svc.get("image") or svc.get("build"), f"service {name} has neither image nor build"
        if svc.get("build"):
            build = svc["build"]
            ctx = ROOT / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            assert (ctx / dockerfile).is_file(), f"service {name} builds from missing {ctx / dockerfile}"


def test_the_expected_services_exist(services: dict[str, dict[str, Any]]) -> None:
    kafka_service(services)
    cmds = emitter_services(services)
    assert [n for n, c in cmds.items() if c[0] == "run"], "no service runs `emitter run`"
    assert [n for n, c in cmds.items() if c[0] == "validate"], "no service runs `emitter validate`"


def test_broker_listeners_are_consistent(services: dict[str, dict[str, Any]]) -> None:
    kname = kafka_service(services)
    env = env_of(services[kname])
    lis = listeners(env["KAFKA_LISTENERS"])
    adv = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    proto = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_NODE_ID"]
    for name in lis:
        assert name in proto, f"listener {name} has no security protocol in the map"
    for name, (_, port) in adv.items():
        assert name in lis, f"advertised listener {name} is not a listener"
        assert lis[name][1] == port, f"{name} is advertised on port {port} but listens on {lis[name][1]}"
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller in lis and controller not in adv
    assert env.get("KAFKA_INTER_BROKER_LISTENER_NAME", "PLAINTEXT") in adv
    # the controller quorum: this node, on the controller listener, at a name of this service
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert len(voters) == 1
    node, _, voter = voters[0].partition("@")
    vhost, vport = hostport(voter)
    assert node == env["KAFKA_NODE_ID"]
    assert service_hosts(services).get(vhost) == kname and vport == lis[controller][1]
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"):
        assert env[key] == "1", f"{key} must be 1 on a single node"


def test_published_broker_port_is_the_advertised_external_one(services: dict[str, dict[str, Any]]) -> None:
    kname = kafka_service(services)
    env = env_of(services[kname])
    adv = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    lis = listeners(env["KAFKA_LISTENERS"])
    hosts = service_hosts(services)
    external = {n: hp for n, hp in adv.items() if hp[0] not in hosts}
    assert external, "no listener advertised for clients outside the compose network"
    published = container_ports(services[kname])
    for name, (host, port) in external.items():
        assert host in ("localhost", "127.0.0.1"), f"{name} advertises {host}"
        assert (port, lis[name][1]) in published, f"{name} ({host}:{port}) is not published as {port}:{lis[name][1]}"
    listening = {p for _, p in lis.values()}
    for _, cport in published:
        assert cport in listening, f"port {cport} is published but the broker does not listen on it"


def test_emitter_and_validator_reach_an_advertised_listener(services: dict[str, dict[str, Any]]) -> None:
    kname = kafka_service(services)
    adv = listeners(env_of(services[kname])["KAFKA_ADVERTISED_LISTENERS"])
    hosts = service_hosts(services)
    for name, cmd in emitter_services(services).items():
        uris = kafka_uris(cmd)
        assert uris, f"{name} uses no kafka:// address"
        for uri in uris:
            host, port, _ = uri_target(uri)
            assert (host, port) in adv.values(), f"{name} uses {host}:{port}, not an advertised listener {adv}"
            assert hosts.get(host) == kname, f"{name} uses {host}, which is not the broker service {kname}"
            deps = services[name].get("depends_on") or {}
            assert deps, f"{name} has no depends_on"


def test_broker_has_a_healthcheck_that_others_wait_for(services: dict[str, dict[str, Any]]) -> None:
    kname = kafka_service(services)
    hc = services[kname].get("healthcheck") or {}
    assert hc.get("test"), "the broker has no healthcheck"
    # every service that depends on the broker waits for it to be healthy (directly or via the init job)
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, dict) and kname in deps:
            assert deps[kname].get("condition") == "service_healthy", f"{name} does not wait for a healthy broker"


def test_emitter_writes_the_topic_the_validator_reads(services: dict[str, dict[str, Any]]) -> None:
    cmds = emitter_services(services)
    written = {uri_target(u)[2] for c in cmds.values() if c[0] == "run" for u in kafka_uris(c)}
    read = {uri_target(u)[2] for c in cmds.values() if c[0] == "validate" for u in kafka_uris(c)}
    assert written and read and read <= written, f"the emitter writes {written}, the validator reads {read}"
    init = init_command(services)
    for topic in written | read:
        assert re.search(rf"--topic\s+{re.escape(topic)}\b", init), f"kafka-init does not create {topic}"


def test_commands_parse_with_the_real_command_line(services: dict[str, dict[str, Any]]) -> None:
    for name, cmd in emitter_services(services).items():
        args = parsed_command(cmd)
        if args.command == "run":
            for sink in args.sink:
                if sink.startswith("kafka://"):
                    parse_kafka_uri(sink)  # every property known and valid
        if args.command == "validate":
            assert args.source.startswith("kafka://"), f"{name} does not read Kafka"
            parse_kafka_uri(args.source, source="--source", defaults={})


def test_workflow_paths_exist_in_the_repo_and_in_the_image(services: dict[str, dict[str, Any]]) -> None:
    docker = DOCKERFILE.read_text(encoding="utf-8")
    workdir = re.findall(r"^WORKDIR\s+(\S+)", docker, re.M)[-1]
    copied = [line.split()[-1] for line in re.findall(r"^COPY\s+workflows\s+\S+", docker, re.M)]
    assert copied, "the Dockerfile does not copy workflows/ into the image"
    for name, cmd in emitter_services(services).items():
        args = parsed_command(cmd)
        paths = args.files if args.command == "check" else [args.workflow]
        for p in paths:
            assert not Path(p).is_absolute(), f"{name}: use a path relative to the image's WORKDIR, not {p}"
            assert (ROOT / p).is_file(), f"{name} names {p}, which is not in the repository"
            load_workflow(ROOT / p)
            in_image = Path(workdir, p).as_posix()
            assert any(in_image.startswith(Path(workdir, c).as_posix() + "/") for c in copied), (
                f"{name}: {p} is not copied into the image under {workdir}"
            )


def test_dockerfile_basics() -> None:
    docker = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM\s+python:3\.11-slim\b", docker, re.M)
    assert re.search(r'^ENTRYPOINT\s+\["emitter"\]', docker, re.M)
    assert re.search(r"^RUN\s+pip install \.", docker, re.M)


def test_bind_mounted_files_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        for v in svc.get("volumes", []):
            src = v["source"] if isinstance(v, dict) else str(v).split(":")[0]
            if src.startswith((".", "/")):
                assert (ROOT / src).exists(), f"{name} mounts {src}, which does not exist"


# --------------------------------------------------------------------------- the collector


def collector(services: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]] | None:
    for name, svc in services.items():
        if "opentelemetry-collector" in str(svc.get("image", "")):
            mounts = [str(v).split(":") for v in svc.get("volumes", []) if not isinstance(v, dict)]
            cmd = " ".join(command_of(svc))
            m = re.search(r"--config[= ](\S+)", cmd)
            assert m, f"{name} gives the collector no --config"
            src = [h for h, c, *_ in mounts if c == m.group(1)]
            assert src, f"{name}'s config {m.group(1)} is not mounted from the repository"
            return name, yaml.safe_load((ROOT / src[0]).read_text(encoding="utf-8"))
    return None


def test_collector_config_parses_and_points_at_services(services: dict[str, dict[str, Any]]) -> None:
    found = collector(services)
    assert found is not None, "docker-compose.yml runs no OpenTelemetry Collector (the README says it does)"
    name, cfg = found
    hosts = service_hosts(services)
    kname = kafka_service(services)
    adv = listeners(env_of(services[kname])["KAFKA_ADVERTISED_LISTENERS"])
    pipelines = cfg["service"]["pipelines"]
    assert pipelines, "no pipelines"
    used_exporters = set()
    for pname, p in pipelines.items():
        for kind in ("receivers", "processors", "exporters"):
            for comp in p.get(kind, []):
                assert comp in (cfg.get(kind) or {}), f"pipeline {pname} uses {kind[:-1]} {comp}, not defined"
        used_exporters.update(p["exporters"])
    for ext in cfg["service"].get("extensions", []):
        assert ext in (cfg.get("extensions") or {}), f"extension {ext} is not defined"
    kinds = {e.split("/")[0] for e in used_exporters}
    assert "kafka" in kinds and kinds & {"otlp", "otlp_grpc"}, f"expected kafka and OTLP exporters, got {kinds}"
    init = init_command(services)
    for exp in used_exporters:
        conf = cfg["exporters"][exp] or {}
        kind = exp.split("/")[0]
        if kind == "kafka":
            for broker in conf["brokers"]:
                host, port = hostport(broker)
                assert hosts.get(host) == kname and (host, port) in adv.values(), f"{exp} -> {broker}"
            topic = (conf.get("traces") or {}).get("topic") or conf.get("topic")
            assert topic and re.search(rf"--topic\s+{re.escape(topic)}\b", init), f"{exp}: topic {topic} not created"
        elif kind in ("otlp", "otlp_grpc", "otlphttp", "otlp_http"):
            ep = conf["endpoint"]
            u = urllib.parse.urlsplit(ep if "://" in ep else f"//{ep}")
            assert u.hostname in hosts, f"{exp} -> {ep}: no such service"
            target = hosts[u.hostname]
            assert "jaeger" in str(services[target].get("image", "")), f"{exp} -> {target}, not Jaeger"
            assert (u.port or 4317) in JAEGER_PORTS
        deps = services[name].get("depends_on") or {}
        if kind != "debug":
            target = kname if kind == "kafka" else hosts[urllib.parse.urlsplit(f"//{conf['endpoint']}").hostname]
            assert target in deps or any(target in (services[d].get("depends_on") or {}) for d in deps), (
                f"{name} does not depend on {target} (exporter {exp})"
            )
    # ports the collector publishes are ports its config listens on
    listening = set()
    for section in ("receivers", "extensions"):
        for comp in (cfg.get(section) or {}).values():
            for ep in re.findall(r"endpoint['\"]?:\s*['\"]?[\w.\-]*:(\d+)", yaml.safe_dump(comp)):
                listening.add(int(ep))
    for _, cport in container_ports(services[name]):
        assert cport in listening, f"{name} publishes {cport}, which its config does not listen on"


def test_jaeger_ports(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        if "jaeger" in str(svc.get("image", "")):
            ports = container_ports(svc)
            assert (16686, 16686) in ports, f"{name} does not publish the UI on 16686"
            for _, c in ports:
                assert c in JAEGER_PORTS, f"{name} publishes {c}, not a Jaeger port"


# --------------------------------------------------------------------------- Prometheus and Grafana


def _mounted(svc: dict[str, Any], target: str) -> Path:
    for v in svc.get("volumes", []):
        src, dst, *_ = str(v).split(":")
        if dst == target:
            return ROOT / src
    raise AssertionError(f"nothing is mounted at {target}")


def _service_with_image(services: dict[str, dict[str, Any]], word: str) -> dict[str, Any]:
    found = [s for s in services.values() if word in str(s.get("image", ""))]
    assert len(found) == 1, f"expected one {word} service, found {len(found)}"
    return found[0]


def test_prometheus_scrapes_the_port_each_emitter_serves(services: dict[str, dict[str, Any]]) -> None:
    prom = _service_with_image(services, "prometheus")
    m = re.search(r"--config\.file=(\S+)", " ".join(command_of(prom)))
    assert m, "prometheus has no --config.file"
    cfg = yaml.safe_load(_mounted(prom, m.group(1)).read_text(encoding="utf-8"))
    hosts = service_hosts(services)
    targets = [t for job in cfg["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    assert targets, "prometheus scrapes nothing"
    served = {}
    for name, cmd in emitter_services(services).items():
        args = parsed_command(cmd)
        if getattr(args, "metrics_port", None):
            served[name] = int(str(args.metrics_port).rpartition(":")[2])
    assert served, "no emitter service serves --metrics-port"
    for t in targets:
        host, port = hostport(t)
        assert hosts.get(host) in served, f"prometheus scrapes {t}: not an emitter service with --metrics-port"
        assert served[hosts[host]] == port, f"prometheus scrapes {t}, {host} serves port {served[hosts[host]]}"
        assert str(port) in [str(p) for p in services[hosts[host]].get("expose", [])], f"{host} does not expose {port}"


def _served_metric_names() -> set[str]:
    """The names a real run's /metrics page has (a short in-process run, scraped once at its end)."""
    import asyncio
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    from emitter.runtime.pacing import Speed
    from emitter.runtime.runner import Runner
    from emitter.runtime.selfmetrics import SelfMetrics, watch_run
    from emitter.sinks.base import open_sink

    from ..helpers import ecommerce, simulate

    served = SelfMetrics("127.0.0.1:0")
    try:
        runner = Runner(simulate(ecommerce()), [open_sink("null")], Speed(None))
        watch_run(served.meter, runner)
        asyncio.run(runner.run())
        with urllib.request.urlopen(served.url, timeout=5) as resp:
            text = resp.read().decode()
    finally:
        served.close()
    return {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_the_grafana_dashboard_queries_metrics_the_emitter_serves(services: dict[str, dict[str, Any]]) -> None:
    import json

    grafana = _service_with_image(services, "grafana")
    sources = yaml.safe_load(
        _mounted(grafana, "/etc/grafana/provisioning/datasources/emitter.yaml").read_text(encoding="utf-8")
    )
    uids = {d["uid"] for d in sources["datasources"]}
    prom_url = urllib.parse.urlsplit(sources["datasources"][0]["url"])
    assert service_hosts(services).get(prom_url.hostname) == "prometheus", prom_url
    dash_dir = _mounted(grafana, "/var/lib/grafana/dashboards")
    boards = sorted(dash_dir.glob("*.json"))
    assert boards, f"no dashboard in {dash_dir}"
    names = _served_metric_names()
    for board in boards:
        data = json.loads(board.read_text(encoding="utf-8"))
        exprs = [t["expr"] for p in data["panels"] for t in p["targets"]]
        assert exprs, f"{board.name} has no queries"
        for p in data["panels"]:
            assert p["datasource"]["uid"] in uids, f"{board.name}: {p['title']} uses an unprovisioned data source"
        for e in exprs:
            used = set(re.findall(r"\b((?:emitter|process)_[a-z_]+)\b", e))
            assert used, f"{board.name}: {e} names no emitter metric"
            assert used <= names, (
                f"{board.name}: {e} names {sorted(used - names)}, not served (served: {sorted(names)})"
            )
