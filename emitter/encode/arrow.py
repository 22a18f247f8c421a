"""Events as Arrow columns: the columnar form of the JSON-lines schema, for Parquet files and data frames.

One column per key of the JSON event, in the same order and with the same values; only the types are
columnar: ``timestamp`` is a UTC timestamp in µs (the JSON text's instant), names that repeat (``run_id``,
``user_type``, ``endpoint``, ``method``, ``service``, ``end_reason``, ``workflow``, a label's ``role`` and
fault ids) are dictionary-encoded strings, and the labels are a struct (``labels="nested"``, the JSON's
shape) or three top-level columns ``label_anomalous``, ``label_faults``, ``label_role`` (``labels="flat"``,
for tools that do not read nested columns well). Every string is written once by the compiled renderer
(:func:`~emitter.encode.render.render_strings`) and handed to Arrow without a copy per value.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any

import numpy as np
import pyarrow as pa

from ..core.batch import ROLES, SCHEMA_VERSION, EventBatch
from ..core.model import END_REASONS, Model
from .render import render_strings

__all__ = ["LABELS", "event_schema", "record_batch"]

LABELS = ("nested", "flat")
_STRINGS = ("event_id", "session_id", "user_id", "path", "trace_id", "span_id")
_NAME = pa.dictionary(pa.int16(), pa.string())


@cache
def event_schema(labels: str = "nested") -> pa.Schema:
    """The Arrow schema of the events (the same for every run)."""
    if labels not in LABELS:
        raise ValueError(f"labels must be nested or flat, got {labels!r}")
    label_fields = [
        pa.field("anomalous", pa.bool_(), nullable=False),
        pa.field("faults", pa.list_(_NAME), nullable=False),
        pa.field("role", _NAME, nullable=False),
    ]
    head = [
        ("schema_version", pa.int16()),
        ("event_id", pa.string()),
        ("run_id", _NAME),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("session_id", pa.string()),
        ("user_id", pa.string()),
        ("user_type", _NAME),
        ("seq", pa.int32()),
        ("attempt", pa.int16()),
        ("endpoint", _NAME),
        ("path", pa.string()),
        ("method", _NAME),
        ("service", _NAME),
        ("status_code", pa.int16()),
        ("latency_ms", pa.float64()),
        ("session_end", pa.bool_()),
        ("end_reason", _NAME),
        ("workflow", _NAME),
    ]
    fields = [pa.field(name, typ, nullable=name == "end_reason") for name, typ in head]  # null: goes on
    if labels == "nested":
        fields.append(pa.field("labels", pa.struct(label_fields), nullable=False))
    else:
        fields += [pa.field("label_" + f.name, f.type, nullable=False) for f in label_fields]
    fields += [pa.field("trace_id", pa.string(), nullable=False), pa.field("span_id", pa.string(), nullable=False)]
    return pa.schema(fields, metadata={"emitter.schema_version": str(SCHEMA_VERSION)})


def _strings(data: np.ndarray[Any, Any], offsets: np.ndarray[Any, Any]) -> pa.Array:
    if int(offsets[-1]) < 2**31:
        return pa.StringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data))
    return pa.LargeStringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(data)).cast(
        pa.string()
    )


def _names(index: np.ndarray[Any, Any], names: tuple[str, ...] | list[str]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(index.astype(np.int16)), pa.array(list(names), pa.string()))


def _end_reasons(end: np.ndarray[Any, Any]) -> pa.DictionaryArray:
    going_on = end == 0
    index = pa.array(np.maximum(end.astype(np.int16) - 1, 0), mask=going_on)
    return pa.DictionaryArray.from_arrays(index, pa.array(list(END_REASONS[1:]), pa.string()))


def _constant(n: int, name: str) -> pa.DictionaryArray:
    return _names(np.zeros(n, np.int16), [name])


def _faults(mask: np.ndarray[Any, Any], ids: tuple[str, ...]) -> pa.ListArray:
    """Each event's fault ids (bit i of its mask: fault i), in the order the run declares them."""
    n = len(mask)
    if not ids or not mask.any():
        return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), _names(np.zeros(0, np.int16), ids))
    bits = (mask[:, None] >> np.arange(len(ids), dtype=np.uint64)[None, :]) & np.uint64(1)
    rows, which = np.nonzero(bits)  # row-major: by event, then by fault number
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(np.bincount(rows, minlength=n), out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), _names(which, ids))


@lru_cache(maxsize=16)
def _per_state(m: Model) -> tuple[list[str], np.ndarray[Any, Any], list[str], np.ndarray[Any, Any]]:
    """The model's service and method names, and each state's index into them (once per model)."""
    eps = m.workflow.endpoints
    svc_names = sorted({ep.service for ep in eps.values()})
    methods = sorted({ep.method for ep in eps.values()})
    svc_of_state = np.array([svc_names.index(eps[s].service) for s in m.states], np.int16)
    method_of_state = np.array([methods.index(eps[s].method) for s in m.states], np.int16)
    return svc_names, svc_of_state, methods, method_of_state


def record_batch(batch: EventBatch, labels: str = "nested") -> pa.RecordBatch:
    """The batch's events as one Arrow record batch of :func:`event_schema`."""
    schema = event_schema(labels)
    n = len(batch)
    ctx, c = batch.ctx, batch.cols
    m = ctx.model
    text = render_strings(batch, _STRINGS)
    svc_names, svc_of_state, methods, method_of_state = _per_state(m)
    state = c["state"]
    label_cols = [
        pa.array(c["anomalous"], pa.bool_()),
        _faults(c["faults"], ctx.fault_ids),
        _names(c["role"], ROLES),
    ]
    cols: list[pa.Array] = [
        pa.array(np.full(n, SCHEMA_VERSION, np.int16)),
        _strings(*text["event_id"]),
        _constant(n, ctx.run_id),
        pa.array(c["t"] + ctx.start_us, pa.timestamp("us", tz="UTC")),
        _strings(*text["session_id"]),
        _strings(*text["user_id"]),
        _names(c["utype"], m.user_types),
        pa.array(c["seq"].astype(np.int32)),
        pa.array(c["attempt"].astype(np.int16)),
        _names(state, m.states),
        _strings(*text["path"]),
        _names(method_of_state[state], methods),
        _names(svc_of_state[state], svc_names),
        pa.array(c["status"].astype(np.int16)),
        pa.array(c["latency"] / 1000),
        pa.array(c["end"] != 0),
        _end_reasons(c["end"]),
        _constant(n, m.workflow.name),
    ]
    if labels == "nested":
        cols.append(pa.StructArray.from_arrays(label_cols, fields=list(schema.field("labels").type)))
    else:
        cols += label_cols
    cols += [_strings(*text["trace_id"]), _strings(*text["span_id"])]
    return pa.RecordBatch.from_arrays(cols, schema=schema)
