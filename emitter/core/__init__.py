"""The pure, deterministic simulation core: no I/O, no environment, no global random state.

Everything here is a function of (workflow, seed, load, start time). The runtime (``emitter.runtime``)
paces the core's output against the wall clock; sinks (``emitter.sinks``) carry it away.
"""
