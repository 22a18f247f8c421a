"""The run's random streams, by name: every random draw of the core comes from one of these.

Each stream is an independent ``numpy.random.Generator`` derived from the run's seed and the stream's
number (a ``SeedSequence`` child, so drawing more from one stream never shifts another). The numbers are
part of the output's identity: changing one changes the bytes of every run, so they are fixed here and
new streams take new numbers. In the open and dataset models the walk's streams (walk, latency, errors,
think, params, faults) are each block's own: block b > 0 of sessions draws from the child (number, b), so
that a shard can walk its blocks without the others (``--shard``); block 0 draws from the stream itself.

=============  ==  ===========================================================================
name           #   draws
=============  ==  ===========================================================================
arrivals       0   open-model gaps and profile thinning; closed-model pauses
users          1   which user (of the population) starts a session
walk           2   entry points and transitions (paths never depend on outcomes)
latency        3   endpoint and service latencies
errors         4   error draws and error status codes
think          5   think times
params         6   path and query parameter values
(ids)          7   unused: id keys come from the run's identity (:func:`id_keys`)
faults         8   fault outcomes, retries' jitter, user reactions, the cascade preset
random_faults  9   onsets, targets and parameters of random faults (drawn before the run)
workflow #i    11+i  the seed of the i-th workflow's own simulation in a run of several
=============  ==  ===========================================================================
"""

from __future__ import annotations

import numpy as np

__all__ = ["STREAMS", "id_keys", "stream", "workflow_seed"]

STREAMS: dict[str, int] = {
    "arrivals": 0,
    "users": 1,
    "walk": 2,
    "latency": 3,
    "errors": 4,
    "think": 5,
    "params": 6,
    "faults": 8,
    "random_faults": 9,
}
_WORKFLOWS = 11


def stream(seed: int, name: str, block: int = 0) -> np.random.Generator:
    """The generator named ``name`` of a run with ``seed``; ``block`` > 0: that block of sessions' own (the
    open and dataset models walk each block of sessions from streams of its own, so that any block can be
    walked without the ones before it: a shard walks only its blocks). Block 0 is the stream itself."""
    key = (STREAMS[name],) if block == 0 else (STREAMS[name], block)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def workflow_seed(seed: int, i: int) -> int:
    """The seed of the i-th workflow's simulation when a run has several."""
    return int(np.random.SeedSequence(seed, spawn_key=(_WORKFLOWS + i,)).generate_state(1)[0])


def id_keys(seed: int, run_id: str, n: int = 8) -> tuple[int, ...]:
    """The keys the run's ids are mixed with: from the seed and the run's identity (so a repeat repeats
    them and any other run, even with the same seed, gets its own)."""
    r = np.random.default_rng(np.random.SeedSequence([seed, int(run_id, 16)]))
    return tuple(int(k) for k in r.integers(0, 2**63, n, dtype=np.int64))
