"""Settings for reaching external systems, shared by the sinks that write to them and the sources that read
from them (the validator never imports a sink)."""
