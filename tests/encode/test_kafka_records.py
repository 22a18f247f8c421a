"""Kafka record batches parsed by the compiled reader, against batches built by aiokafka's own builder."""

from __future__ import annotations

import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from emitter.encode.kafka_records import parse_record_batches, scan_record_batches
from emitter.errors import EmitterError


def _batch(base: int, n: int, compression: int = 0) -> bytes:
    b = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=compression,
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for i in range(n):
        b.append(
            i, timestamp=1_000 + i, key=None if i == 2 else b"k%d" % (base + i), value=b"v%d" % (base + i), headers=[]
        )
    out = bytearray(b.build())
    out[0:8] = base.to_bytes(8, "big")  # the base offset, as a broker assigns it (not part of the CRC)
    return bytes(out)


@pytest.mark.parametrize("compression", [0, 1])  # none, gzip
def test_records_and_offsets_come_back(compression: int) -> None:
    buf = _batch(0, 5, compression) + _batch(5, 3, compression)
    tab = scan_record_batches(buf, 0, len(buf), min_offset=1, partition=7)
    b = parse_record_batches(buf, tab)
    assert b.offset.tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert b.partition.tolist() == [7] * 7
    assert b.values() == [b"v%d" % i for i in range(1, 8)]
    assert b.keys() == [b"k1", None, b"k3", b"k4", b"k5", b"k6", None]  # (i == 2 of each batch: no key)


def test_a_batch_cut_short_waits_for_the_next_fetch() -> None:
    buf = _batch(0, 5) + _batch(5, 3)
    tab = scan_record_batches(buf, 0, len(buf) - 1)
    assert len(tab) == 1


def test_a_damaged_batch_fails_its_crc() -> None:
    buf = bytearray(_batch(0, 5) + _batch(5, 3))
    good = scan_record_batches(bytes(buf), 0, len(buf), partition=2)
    assert len(good) == 2
    buf[len(buf) - 3] ^= 0x01  # one bit of the second batch's last value
    with pytest.raises(EmitterError, match=r"partition 2: the record batch at offset 5 fails its CRC check"):
        scan_record_batches(bytes(buf), 0, len(buf), partition=2)
