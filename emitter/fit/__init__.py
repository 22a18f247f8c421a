"""``emitter fit``: learn a runnable workflow from recorded traffic (emitter's events, OTLP, Jaeger, Zipkin)."""

from __future__ import annotations

from .fitter import FitOptions, FitResult, fit
from .traffic import FORMATS, Call, Span, read_traffic

__all__ = ["FORMATS", "Call", "FitOptions", "FitResult", "Span", "fit", "read_traffic"]
