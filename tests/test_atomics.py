"""Spin synchronization of the split fused sampler: counters, waits and barriers across threads."""
import os
import threading
import time

import numpy as np
import pytest
from numba import njit

from reference_model.sampling import atomics

pytestmark = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2 if hasattr(os, "sched_getaffinity") else os.cpu_count() < 2,
    reason="spinning threads need a core each")


@njit(nogil=True)
def _rounds(tid, sync, data, n):
    """Each round: write this thread's slot, meet, check the other's slot, meet again.
    Returns the rounds in which the other thread's write of that round was not visible."""
    missed = 0
    for r in range(1, n + 1):
        data[tid * atomics.LINE] = r
        atomics.barrier(sync, tid, 2, 2 * r - 1)
        missed += data[(1 - tid) * atomics.LINE] != r
        atomics.barrier(sync, tid, 2, 2 * r)
    return missed


@njit(nogil=True)
def _wait_then_read(sync, value, data):
    atomics.wait_for(sync, 0, value)
    return data[0]


def test_barrier_makes_each_rounds_writes_visible():
    sync, data = atomics.counters(2), np.zeros(2 * atomics.LINE, np.int64)
    missed = [None, None]

    def run(tid):
        missed[tid] = _rounds(tid, sync, data, 20_000)
    threads = [threading.Thread(target=run, args=(tid,)) for tid in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert missed == [0, 0]
    assert sync[::atomics.LINE].tolist() == [40_000, 40_000]


def test_wait_for_returns_only_after_the_counter_is_published():
    sync, data = atomics.counters(1), np.zeros(1, np.int64)
    _wait_then_read(sync, 0, data)  # compile outside the timed part
    seen = {}

    def waiter():
        start = time.perf_counter()
        seen["value"] = _wait_then_read(sync, 3, data)
        seen["seconds"] = time.perf_counter() - start
    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.2)
    assert thread.is_alive()  # counter 0 is still 0: the waiter spins (or yields)
    data[0] = 42
    atomics.publish(sync, 0, 2)  # not enough yet
    time.sleep(0.05)
    assert thread.is_alive()
    atomics.publish(sync, 0, 3)
    thread.join(5)
    assert not thread.is_alive()
    assert seen["value"] == 42 and seen["seconds"] >= 0.25


@njit(nogil=True)
def _wait(sync, value):
    return atomics.wait_for(sync, 0, value)


def test_wait_for_returns_the_value_it_saw():
    # a waiter that sees a later value may skip its next waits up to it (the fused split does)
    sync = atomics.counters(1)
    atomics.publish(sync, 0, 7)
    assert _wait(sync, 3) == 7
    assert _wait(sync, 7) == 7
