"""Kafka sink settings: Kafka's own property names, config files, secrets that are never printed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emitter.clients.kafka import parse_kafka_uri
from emitter.errors import ConfigError
from emitter.sinks.kafka import murmur2_partition


def test_properties_map_to_the_client() -> None:
    s = parse_kafka_uri(
        "kafka://a:9092,b:9093/events?acks=1&enable.idempotence=false&compression.type=lz4"
        "&linger.ms=20&batch.size=65536&partitions=12&on.full=drop&buffer.memory=1048576"
    )
    assert s.bootstrap == ["a:9092", "b:9093"] and s.topic == "events"
    assert s.producer["acks"] == 1 and s.producer["enable_idempotence"] is False
    assert (s.producer["compression_type"], s.producer["linger_ms"], s.producer["max_batch_size"]) == ("lz4", 20, 65536)
    assert (s.partitions, s.on_full, s.buffer_memory) == (12, "drop", 1 << 20)


def test_defaults_are_safe() -> None:
    s = parse_kafka_uri("kafka://h:9092/t")
    assert s.producer["acks"] == "all" and s.producer["enable_idempotence"] is True
    assert s.on_full == "block" and s.max_block_ms == 60_000


def test_config_file_and_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    props = tmp_path / "producer.properties"
    props.write_text(
        f"# comment\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-256\n"
        f"sasl.username=alice\nsasl.password=file:{secret}\nlinger.ms=7\n"
    )
    s = parse_kafka_uri(f"kafka://h:9092/t?config={props}&linger.ms=9")
    assert s.producer["sasl_plain_password"] == "s3cret"
    assert s.producer["linger_ms"] == 9  # the URI wins over the file
    assert "s3cret" not in s.describe() and "sasl.password=***" in s.describe()
    monkeypatch.setenv("KPW", "from-env")
    assert parse_kafka_uri("kafka://h:9092/t?sasl.password=env:KPW").producer["sasl_plain_password"] == "from-env"


@pytest.mark.parametrize(
    ("uri", "needle"),
    [
        ("kafka://h:9092", "expected one topic name"),
        ("kafka://h/t", "expected HOST:PORT"),
        ("kafka://h:9092/t?acks=2", "acks: expected all, 0, 1 or -1"),
        ("kafka://h:9092/t?compression.type=brotli", "compression.type: expected one of gzip, lz4, none, snappy, zstd"),
        ("kafka://h:9092/t?acks=1", "enable.idempotence: idempotence needs acks=all"),
        ("kafka://h:9092/t?on.full=wait", "on.full: expected block or drop"),
        ("kafka://h:9092/t?linger.ms=soon", "linger.ms: invalid value 'soon'"),
        ("kafka://h:9092/t?sasl.password=env:NOPE_NOT_SET", "environment variable 'NOPE_NOT_SET' is not set"),
    ],
)
def test_bad_settings_are_one_clear_line(uri: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_kafka_uri(uri)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_partitioning_matches_the_java_client() -> None:
    # against aiokafka's port of the Java client's murmur2 (Utils.toPositive(murmur2(key)) % partitions)
    from aiokafka.partitioner import murmur2

    keys = [b"21" * 8, b"foobar" * 2 + b"abcd", b"a" * 16, b"0123456789abcdef"]
    mat = np.frombuffer(b"".join(keys), np.uint8).reshape(len(keys), 16)
    for parts in (1, 3, 6, 97):
        assert murmur2_partition(mat, parts).tolist() == [(murmur2(k) & 0x7FFFFFFF) % parts for k in keys]


@pytest.mark.parametrize(
    "query",
    [
        "sasl.password=hunter2&acks=7",
        "sasl.password=hunter2&bogus=1",
        "ssl.key.password=hunter2&partitions=0",
        "sasl.password=hunter2&ssl.ca.location=/nonexistent/ca.pem&security.protocol=SSL",
    ],
)
def test_a_literal_secret_never_reaches_an_error(query: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_kafka_uri(f"kafka://127.0.0.1:9092/t?{query}").client_kwargs()  # the CA file is loaded last
    text = str(err.value)
    assert "hunter2" not in text and "***" in text, text


def test_transactional_settings() -> None:
    s = parse_kafka_uri("kafka://a:9092/t?transactional.id=tx-1&transaction.interval.ms=250")
    assert s.producer["transactional_id"] == "tx-1" and s.producer["enable_idempotence"] is True
    assert s.transaction_interval_ms == 250
    for bad, words in (
        ("transactional.id=tx&acks=1&enable.idempotence=false", "transactions need acks=all"),
        ("transactional.id=", "expected a non-empty id"),
        ("transactional.id=tx&transaction.interval.ms=0", "expected a positive integer"),
    ):
        with pytest.raises(ConfigError, match=words):
            parse_kafka_uri(f"kafka://a:9092/t?{bad}")
