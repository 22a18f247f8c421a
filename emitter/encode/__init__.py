"""Encoders: columnar event batches to bytes, one compiled kernel per wire format (JSON lines, OTLP
protobuf; the Kafka record-batch reader reads the other way), the per-event strings rendered in one layer."""

from .jsonl import encode_jsonl
from .otlp import OtlpRequest, encode_otlp
from .render import render_strings

__all__ = ["OtlpRequest", "encode_jsonl", "encode_otlp", "render_strings"]
