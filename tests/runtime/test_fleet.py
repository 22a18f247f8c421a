"""The parent's half of ``--workers``: the ordered merge of the workers' lines, and their reports summed."""

from __future__ import annotations

import numpy as np
import pytest

from emitter.runtime.fleet import Fleet, OrderedMerge, SinkTotal
from emitter.runtime.pacing import Speed
from emitter.runtime.runner import RunStats


def _stream(rng: np.random.Generator, workers: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n events with many time ties, each owned by one worker: keys (5, n) in total order and the owners."""
    t = np.sort(rng.integers(0, n // 4, n))
    sess = rng.permutation(n)  # unique: a total order
    keys = np.stack([t, np.zeros(n, np.int64), sess, rng.integers(0, 9, n), np.ones(n, np.int64)])
    order = np.lexsort(keys[::-1])
    keys = keys[:, order]
    return keys, rng.integers(0, workers, n)


def _line(keys: np.ndarray, i: int) -> bytes:
    return b"%d %d\n" % (keys[0, i], keys[2, i])


def test_the_merge_is_the_total_order_whatever_the_chunks_and_marks() -> None:
    rng = np.random.default_rng(5)
    for trial in range(30):
        w = int(rng.integers(1, 5))
        keys, owner = _stream(rng, w, 2000)
        merge = OrderedMerge(w)
        out: list[bytes] = []
        pos = [np.flatnonzero(owner == k) for k in range(w)]
        at = [0] * w
        while any(at[k] < len(pos[k]) for k in range(w)):
            k = int(rng.integers(0, w))
            if at[k] >= len(pos[k]):
                continue
            if rng.random() < 0.2:  # a paced worker waiting: nothing earlier than its next event is to come
                merge.advance(k, int(keys[0, pos[k][at[k]]]))
            else:
                take = pos[k][at[k] : at[k] + int(rng.integers(1, 80))]
                at[k] += len(take)
                merge.add(k, keys[:, take], b"".join(_line(keys, i) for i in take))
                if at[k] >= len(pos[k]):
                    merge.end(k)
            view, n, first = merge.pop()
            data = bytes(view)  # (a view of the merge's scratch buffer: copied before the next pop)
            if n:
                assert data.count(b"\n") == n
                assert first == int(data.split(b" ", 1)[0])
                out.append(data)
                # nothing was handed out that a worker could still come before
                last_t = int(data.splitlines()[-1].split()[0])
                assert last_t < min(merge.mark), trial
        view, n, _ = merge.pop()
        out.append(bytes(view))
        want = b"".join(_line(keys, i) for i in range(keys.shape[1]))
        assert b"".join(out) == want, trial
        assert sum(merge.waiting) == 0


def _popped(merge: OrderedMerge) -> tuple[bytes, int]:
    view, n, _ = merge.pop()
    return bytes(view), n


def test_a_worker_that_has_said_nothing_holds_the_merge() -> None:
    keys = np.array([[5, 6], [0, 0], [1, 2], [0, 0], [1, 1]])
    merge = OrderedMerge(2)
    merge.add(0, keys, b"a\nb\n")
    assert merge.pop()[1] == 0  # worker 1 could still send something earlier
    assert merge.behind() == 1
    merge.advance(1, 6)
    assert _popped(merge) == (b"a\n", 1)  # (6 is not earlier than 6: b waits for worker 1's ties)
    merge.end(1)
    assert merge.pop()[1] == 0  # worker 0 itself may still send a tie at 6 (its mark)
    merge.advance(0, 7)
    assert _popped(merge) == (b"b\n", 1)


def test_lines_and_keys_must_agree() -> None:
    merge = OrderedMerge(1)
    with pytest.raises(ValueError, match="1 lines for 2 keys"):
        merge.add(0, np.zeros((5, 2), np.int64), b"one line\n")


def _report(events: int, sent: int, failed: int = 0, lag_max: float = 0.0, error: str | None = None) -> dict:
    counts = np.zeros(RunStats().lag.counts.shape, np.int64)
    counts[10] = events
    return {
        "events": events,
        "sessions_started": events // 10,
        "sessions_ended": events // 20,
        "last_start_us": events * 7,
        "sim_us": events * 9,
        "lag": (counts, lag_max, lag_max / 2, 0),
        "stopped_by": None,
        "error": error,
        "input_error": False,
        "sinks": [((sent, sent - failed, failed, 0, sent * 100), ["note"])],
    }


def test_the_fleet_sums_the_latest_report_of_each_worker() -> None:
    total = SinkTotal("kafka://h:9092/t", 2)
    fleet = Fleet(2, Speed(None), [total], [0])
    held = fleet.stats  # (the metrics hold this very object)
    fleet.update(0, _report(100, 100))
    fleet.update(1, _report(40, 40, lag_max=0.5))
    fleet.update(0, _report(300, 300, failed=3, lag_max=0.2))  # a later report replaces the earlier one
    assert fleet.stats is held
    assert (held.events, held.sessions_started, held.sessions_ended) == (340, 34, 17)
    assert held.sim_us == 2700 and held.last_start_us == 2100
    assert held.lag.counts.sum() == 340 and held.lag.max == 0.5
    s = total.stats
    assert (s.sent, s.acked, s.failed, s.bytes) == (340, 337, 3, 34_000) and s.notes == ["note"]
    assert total.describe() == "kafka://h:9092/t (one per worker, 2)"
    assert held.error is None
    fleet.update(1, _report(50, 50, error="kafka: broker gone"))
    assert held.error == "worker 1: kafka: broker gone"
