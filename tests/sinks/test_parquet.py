"""The Parquet sink: files read back by two independent readers (pyarrow and DuckDB) equal the JSON lines.

The run is the golden fault scenario (two workflows, every fault kind, retries, reactions, random faults,
the cascade preset), so every label and both end-reason kinds appear.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from emitter.app.dataset import Dataset, generate
from emitter.errors import ConfigError
from emitter.sinks.base import open_sink

from ..conftest import ROOT
from ..helpers import run

SCENARIO = ROOT / "tests" / "golden" / "faults.yaml"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return generate(SCENARIO)


def _iso(us: int) -> str:
    return (EPOCH + dt.timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _as_event(row: dict[str, Any], flat: bool = False) -> dict[str, Any]:
    """A Parquet row in the JSON schema's form (the timestamp as µs since the epoch -> its RFC 3339 text)."""
    out = dict(row)
    ts = out["timestamp"]
    out["timestamp"] = _iso(ts if isinstance(ts, int) else round((ts - EPOCH).total_seconds() * 1e6))
    if flat:
        labels = {k: out.pop("label_" + k) for k in ("anomalous", "faults", "role")}
        keys = list(out)
        at = keys.index("workflow") + 1
        out = {**{k: out[k] for k in keys[:at]}, "labels": labels, **{k: out[k] for k in keys[at:]}}
    out["labels"] = {**out["labels"], "faults": list(out["labels"]["faults"])}
    return out


def _write(ds: Dataset, uri: str) -> Any:
    sink = open_sink(uri)

    async def go() -> None:
        async with sink:
            for b in ds.batches:
                await sink.send(b)

    run(go())
    return sink


def test_pyarrow_reads_back_the_json_events(ds: Dataset, tmp_path: Path) -> None:
    events = list(ds.events())
    assert any(e["labels"]["faults"] for e in events) and any(e["end_reason"] == "abandon" for e in events)
    path = tmp_path / "ev.parquet"
    sink = _write(ds, f"parquet:{path}?row_group_size=1000")
    assert sink.stats.acked == sink.stats.sent == len(events)
    table = pq.read_table(path)
    assert [_as_event(r) for r in table.to_pylist()] == events
    meta = pq.ParquetFile(path).metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sizes[:-1] == [1000] * (len(sizes) - 1) and 0 < sizes[-1] <= 1000
    assert meta.row_group(0).column(0).compression == "ZSTD"


def test_duckdb_reads_back_the_json_events(ds: Dataset, tmp_path: Path) -> None:
    events = list(ds.events())
    path = tmp_path / "flat.parquet"
    _write(ds, f"parquet:{path}?labels=flat&compression=snappy")
    con = duckdb.connect()
    rel = con.sql(f"select * exclude (timestamp), epoch_us(timestamp) as ts from read_parquet('{path}')")
    names = rel.columns
    rows = []
    for values in rel.fetchall():
        r = dict(zip(names, values, strict=True))
        ts = r.pop("ts")
        keys = pq.read_schema(path).names
        r["timestamp"] = ts
        rows.append(_as_event({k: r[k] for k in keys}, flat=True))
    assert rows == events
    # and a query a user would run: errors per service under each fault
    ((n,),) = con.sql(f"select count(*) from read_parquet('{path}') where len(label_faults) > 0").fetchall()
    assert n == sum(1 for e in events if e["labels"]["faults"])


def test_the_same_events_make_the_same_bytes_however_they_were_batched(ds: Dataset, tmp_path: Path) -> None:
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    _write(ds, f"parquet:{a}?row_group_size=700")
    rebatched = [x for bt in ds.batches for x in (bt.slice(0, len(bt) // 3), bt.slice(len(bt) // 3, len(bt)))]
    _write(Dataset(**{**ds.__dict__, "batches": rebatched}), f"parquet:{b}?row_group_size=700")
    assert a.read_bytes() == b.read_bytes()


def test_partition_by_date_writes_one_file_per_utc_day(tmp_path: Path) -> None:
    d = generate(ROOT / "workflows" / "ecommerce.yaml", seed=4, num_users=300, date_range=("2026-03-01", "2026-03-04"))
    out = tmp_path / "parts"
    sink = _write(d, f"parquet:{out}?partition=date")
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.parquet"))
    assert files[:3] == [f"date=2026-03-0{i}/part-0.parquet" for i in (1, 2, 3)]
    assert sink.stats.acked == len(d)
    con = duckdb.connect()
    q = (
        "select date, count(*), min(epoch_us(timestamp)), max(epoch_us(timestamp)) "
        f"from read_parquet('{out}/*/*.parquet', hive_partitioning=true) group by 1 order by 1"
    )
    rows = con.sql(q).fetchall()
    assert sum(r[1] for r in rows) == len(d)
    for day, _, lo, hi in rows:
        assert _iso(lo)[:10] == _iso(hi)[:10] == str(day)


def test_nothing_is_acknowledged_before_the_file_is_whole(ds: Dataset, tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    sink = open_sink(f"parquet:{path}")

    async def go() -> tuple[int, int]:
        await sink.start()
        await sink.send(ds.batches[0])
        mid = sink.stats.acked, sink.stats.pending
        await sink.stop()
        return mid

    acked, pending = run(go())
    assert acked == 0 and pending == len(ds.batches[0])
    assert sink.stats.acked == len(ds.batches[0]) and sink.stats.pending == 0


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("parquet:", "needs a path"),
        ("parquet:x.parquet?row_group_size=0", "row_group_size"),
        ("parquet:x.parquet?compression=zip", "compression"),
        ("parquet:x.parquet?labels=deep", "labels"),
        ("parquet:x.parquet?partition=hour", "partition"),
        ("parquet:x.parquet?colour=red", "unknown option"),
    ],
)
def test_bad_options_are_one_line_errors(uri: str, says: str) -> None:
    with pytest.raises(ConfigError) as e:
        open_sink(uri)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_a_directory_in_the_way_is_a_clear_error(tmp_path: Path) -> None:
    sink = open_sink(f"parquet:{tmp_path}")
    with pytest.raises(ConfigError, match="Is a directory"):
        run(sink.start())


def test_json_roundtrip_of_a_row_is_plain(ds: Dataset) -> None:
    """Arrow rows hold the JSON's values, so a notebook can json.dumps them (timestamps aside)."""
    row = ds.to_arrow().slice(0, 1).to_pylist()[0]
    row.pop("timestamp")
    assert json.loads(json.dumps(row)) == row
