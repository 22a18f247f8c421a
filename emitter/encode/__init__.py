"""Encoders: columnar event batches to bytes (JSON lines here; OTLP protobuf in ``otlp``)."""

from .jsonl import encode_jsonl, encode_jsonl_reference

__all__ = ["encode_jsonl", "encode_jsonl_reference"]
