"""Datasets in Python: :func:`generate` runs a simulation to the end in memory and hands back a :class:`Dataset`.

The run is the one ``emitter run`` makes from the same workflow (or scenario), seed and options, on the
virtual clock: ``save_jsonl`` writes the bytes ``--sink file:PATH`` writes, ``save_parquet`` those of
``--sink parquet:PATH``. Nothing touches the disk until a ``save_*`` call.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from ..core.batch import EventBatch
from ..core.faults import FAULTS, CascadePreset, Dynamics, Fault
from ..core.spec import Workflow
from ..core.truth import truth_records
from ..encode.jsonl import encode_jsonl
from ..errors import ConfigError
from ..inputs.convert import Problems, convert
from ..inputs.options import option
from ..inputs.scenario import checked_faults, is_scenario
from ..inputs.yamlio import load_yaml_file
from ..runtime.pacing import Speed
from .config import config_of
from .run import build_simulation

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl
    import pyarrow as pa

__all__ = ["APICall", "Dataset", "Session", "generate"]

WHERE = "generate()"


class APICall(msgspec.Struct, frozen=True):
    """One call of a session, as the event says (retries are calls of their own, with ``attempt`` > 1)."""

    seq: int
    attempt: int
    endpoint: str
    path: str
    method: str
    service: str
    timestamp: dt.datetime
    latency_ms: float
    status_code: int
    anomalous: bool
    faults: tuple[str, ...]
    role: str
    event_id: str
    trace_id: str
    span_id: str

    @property
    def failed(self) -> bool:
        return self.status_code >= 400


class Session(msgspec.Struct, frozen=True):
    """A user's session: its calls in time order, and how it ended."""

    session_id: str
    user_id: str
    user_type: str
    workflow: str
    calls: tuple[APICall, ...]
    end_reason: str | None

    @property
    def start(self) -> dt.datetime:
        return self.calls[0].timestamp

    @property
    def endpoint_sequence(self) -> list[str]:
        """The walk: one endpoint per logical step (retries left out)."""
        return [c.endpoint for c in self.calls if c.attempt == 1]

    @property
    def failed(self) -> bool:
        return any(c.failed for c in self.calls)


@dataclass
class Dataset:
    """Every event of one run, in time order (``len()`` is the number of events)."""

    workflows: list[tuple[Workflow, float]]
    seed: int
    start_us: int
    run_id: str
    load: str
    dynamics: Dynamics
    batches: list[EventBatch] = field(repr=False)
    scenario: str | None = None
    scenario_digest: str | None = None

    def __len__(self) -> int:
        return sum(len(b) for b in self.batches)

    @property
    def workflow(self) -> Workflow:
        return self.workflows[0][0]

    @property
    def start(self) -> dt.datetime:
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=self.start_us)

    def __repr__(self) -> str:
        names = ", ".join(wf.name for wf, _ in self.workflows)
        return f"<Dataset {len(self):,} events of {names!r}, seed {self.seed}, run id {self.run_id}>"

    # ---------------------------------------------------------------- the events
    def jsonl(self) -> Iterator[bytes]:
        """The events' JSON lines, a batch at a time (the file sink's bytes)."""
        for b in self.batches:
            yield encode_jsonl(b)

    def events(self) -> Iterator[dict[str, Any]]:
        """Every event as the JSON schema's dict."""
        for chunk in self.jsonl():
            for line in chunk.splitlines():
                yield json.loads(line)

    def to_arrow(self, labels: str = "nested") -> pa.Table:
        """The events as an Arrow table (the Parquet sink's columns; see docs/parquet.md)."""
        import pyarrow as pa

        from ..encode.arrow import event_schema, record_batch

        return pa.Table.from_batches([record_batch(b, labels) for b in self.batches if len(b)], event_schema(labels))

    def to_pandas(self, labels: str = "flat") -> pd.DataFrame:
        """A pandas DataFrame (labels flattened into columns by default; names become categoricals)."""
        return self.to_arrow(labels).to_pandas()

    def to_polars(self, labels: str = "nested") -> pl.DataFrame:
        import polars as pl

        frame = pl.from_arrow(self.to_arrow(labels))
        assert isinstance(frame, pl.DataFrame)
        return frame

    @property
    def sessions(self) -> list[Session]:
        """The sessions, in order of their first call, each with its calls in time order."""
        cached: list[Session] | None = self.__dict__.get("_sessions")
        if cached is not None:
            return cached
        import numpy as np

        t = self.to_arrow("flat")
        cols = {name: _pylist(t.column(name)) for name in t.column_names if name != "timestamp"}
        stamps = t.column("timestamp").cast("int64").to_numpy().astype("datetime64[us]").astype(object)
        utc = dt.UTC
        cols["timestamp"] = [d.replace(tzinfo=utc) for d in stamps]  # (numpy makes naive datetimes quickly)
        import pyarrow.compute as pc

        # session numbers in order of first appearance, which is the order of each session's first call
        codes = pc.dictionary_encode(t.column("session_id").combine_chunks()).indices.to_numpy()
        order = np.argsort(codes, kind="stable")  # rows by session, each session's in time order
        edges = np.flatnonzero(np.diff(codes[order])) + 1
        groups = np.split(order, edges) if len(order) else []
        c = cols
        fields = (
            *("seq", "attempt", "endpoint", "path", "method", "service", "timestamp", "latency_ms"),
            *("status_code", "label_anomalous", "label_faults", "label_role", "event_id", "trace_id", "span_id"),
        )
        records = list(itertools.starmap(APICall, zip(*(c[f] for f in fields), strict=True)))
        reasons = c["end_reason"]
        out = []
        for rows in groups:
            idx = rows.tolist()
            last = idx[-1]
            ended = next((reasons[i] for i in reversed(idx) if reasons[i] is not None), None)
            calls = tuple([records[i] for i in idx])
            out.append(
                Session(
                    c["session_id"][last], c["user_id"][last], c["user_type"][last], c["workflow"][last], calls, ended
                )
            )
        self.__dict__["_sessions"] = out
        return out

    def truth(self) -> list[dict[str, Any]]:
        """The ground truth ``--truth`` writes: the run's manifest, then one record per fault."""
        return truth_records(
            run_id=self.run_id,
            seed=self.seed,
            start_us=self.start_us,
            speed="max",
            workflows=self.workflows,
            dynamics=self.dynamics,
            load=self.load,
            scenario=self.scenario,
            scenario_digest=self.scenario_digest,
        )

    # ---------------------------------------------------------------- saving
    def save_jsonl(self, path: str | Path) -> Path:
        """The JSON lines ``--sink file:PATH`` writes (a ``.gz`` name compresses, as there)."""
        return self._save(f"file:{path}", Path(path))

    def save_parquet(self, path: str | Path, **options: Any) -> Path:
        """What ``--sink parquet:PATH?OPTIONS`` writes; ``options``: row_group_size, compression, level,
        labels (nested or flat), partition (date)."""
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return self._save(f"parquet:{path}" + (f"?{query}" if query else ""), Path(path))

    def _save(self, uri: str, path: Path) -> Path:
        from ..sinks.base import open_sink

        sink = open_sink(uri, source="save")

        async def write() -> None:
            async with sink:
                for b in self.batches:
                    await sink.send(b)

        asyncio.run(write())
        return path


def _pylist(col: Any) -> list[Any]:
    """A column as Python values; dictionary columns through their (small) dictionary, not per value."""
    import pyarrow as pa

    arr = col.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        names = arr.dictionary.to_pylist()
        return [None if i is None else names[i] for i in arr.indices.to_pylist()]
    if pa.types.is_list(arr.type) and pa.types.is_dictionary(arr.type.value_type):
        names = arr.values.dictionary.to_pylist()
        offs = arr.offsets.to_pylist()
        flat = [names[i] for i in arr.values.indices.to_pylist()]
        return [tuple(flat[a:b]) if b > a else () for a, b in itertools.pairwise(offs)]
    return list(arr.to_pylist())


def _faults(items: Sequence[Any], workflows: list[Workflow]) -> list[Fault]:
    probs = Problems(WHERE)
    converted = [
        f if isinstance(f, Fault) else convert(dict(f) if isinstance(f, Mapping) else f, FAULTS, probs, ("faults", i))
        for i, f in enumerate(items)
    ]
    out = checked_faults(converted, workflows, probs)
    probs.raise_if_any()
    return out


def generate(
    workflow: Workflow | Mapping[str, Any] | str | Path,
    *,
    seed: int | None = None,
    start: str | dt.datetime | None = None,
    num_users: int | None = None,
    sessions_per_user: Any = None,
    date_range: Any = None,
    sessions: int | None = None,
    duration: str | float | None = None,
    arrival_rate: float | None = None,
    users: int | None = None,
    population: int | None = None,
    faults: Sequence[Fault | Mapping[str, Any]] = (),
    cascade_failure_rate: float | None = None,
) -> Dataset:
    """Run ``workflow`` (a :class:`Workflow`, a workflow as a dict, or a workflow or scenario file) to the end
    on the virtual clock and return its events. The load is the CLI's: ``num_users``, ``sessions_per_user``
    (``(3, 2)``: mean and standard deviation) and ``date_range`` (days, a duration, or ``(start, end)``) for the
    seed's dataset model; or ``sessions``/``duration`` with ``arrival_rate`` (open) or ``users`` (closed).
    With no load at all, the dataset model's 100 users. Every value is checked as the CLI checks it."""
    if isinstance(workflow, Workflow):
        data: Any = workflow.to_dict()
        source, base = workflow.source, None
    elif isinstance(workflow, Mapping):
        data, source, base = dict(workflow), "<python>", None
    else:
        data, source, base = load_yaml_file(workflow), str(workflow), Path(workflow).resolve().parent
    if isinstance(date_range, tuple | list) and len(date_range) == 2:
        date_range = {"start": date_range[0], "end": date_range[1]}
    if isinstance(start, dt.datetime):
        start = start.isoformat()
    raw = {
        "seed": seed,
        "start": start,
        "num_users": num_users,
        "sessions_per_user": list(sessions_per_user) if isinstance(sessions_per_user, tuple) else sessions_per_user,
        "date_range": date_range,
        "sessions": sessions,
        "duration": duration,
        "arrival_rate": arrival_rate,
        "users": users,
        "population": population,
    }
    given: dict[str, Any] = {}
    problems = []
    for name, value in raw.items():
        if value is None:
            continue
        opt = option(name)
        try:
            given[name] = opt.parse(value if opt.structured else str(value))
        except ValueError as exc:
            problems.append(ConfigError.one(WHERE, (name,), str(exc)).problems[0])
    if problems:
        raise ConfigError(problems)
    models = ("num_users", "users", "arrival_rate", "sessions", "duration")
    if not any(k in given for k in models) and not is_scenario(data):
        given["num_users"] = 100
    cfg = config_of(data, source, given, {}, base=base, where=WHERE)
    cfg.speed = Speed(None)
    if faults or cascade_failure_rate is not None:
        fs = [*cfg.dynamics.faults, *_faults(faults, [wf for wf, _ in cfg.weighted])]
        cascade = cfg.dynamics.cascade
        if cascade_failure_rate is not None:
            if not 0 <= cascade_failure_rate <= 1:
                raise ConfigError.one(
                    WHERE, ("cascade_failure_rate",), f"expected a probability in [0, 1], got {cascade_failure_rate!r}"
                )
            cascade = CascadePreset(rate=float(cascade_failure_rate))
        cfg.dynamics = replace(cfg.dynamics, faults=tuple(fs), cascade=cascade)
    sim, run_seed, dyn = build_simulation(cfg)
    batches = [b for b in sim.batches() if len(b)]
    return Dataset(
        workflows=cfg.weighted,
        seed=run_seed,
        start_us=sim.start_us,
        run_id=sim.ctx.run_id,
        load=sim.load.describe(),
        dynamics=dyn,
        batches=batches,
        scenario=cfg.scenario,
        scenario_digest=cfg.scenario_digest,
    )
