"""emitter: realistic, reproducible streams of API-call traffic from Markov-chain user sessions."""

from ._version import __version__
from .errors import ConfigError, EmitterError
from .workflow import Workflow, load_workflow, parse_workflow

__all__ = ["ConfigError", "EmitterError", "Workflow", "__version__", "load_workflow", "parse_workflow"]
