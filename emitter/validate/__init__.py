"""The validator: rebuild sessions from a stream, learn the chain back, test it against the workflow."""

from .assemble import Assembler, Counts
from .report import Report, build_report
from .stats import holm, pearson_gof, wilson

__all__ = ["Assembler", "Counts", "Report", "build_report", "holm", "pearson_gof", "wilson"]
