"""Spin synchronization between numba-compiled threads: acquire/release counters and a barrier.

numba has no atomics, so these are LLVM atomic loads and stores (``load atomic ... acquire``,
``store atomic ... release``) emitted by intrinsics. Data written before a release store of a
counter is visible to a thread after its acquire load sees the new value (the C++ memory model,
which LLVM implements on every target).

Counters live in an int64 array, one per 64-byte cache line (:data:`LINE` elements apart), so
threads that spin on different counters do not invalidate each other's line. Every counter only
grows, so a waiter compares with ``>=`` and never misses a value. Waiting spins with the x86
``pause`` hint (elsewhere a plain loop): the waits here last about a microsecond, far shorter
than any sleep the OS offers. A wait that goes on past :data:`SPINS` rounds (another thread is
not running: more threads than free cores) yields the core to the OS on each further round, so
an oversubscribed machine slows down instead of stalling for whole time slices.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import platform

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

#: int64 elements per cache line: counter ``i`` is element ``i * LINE``.
LINE = 8
#: Spin rounds before a wait starts yielding (about 20-100 microseconds of ``pause``).
SPINS = 1000
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def _has_sched_yield() -> bool:
    """Whether this process's C library has ``sched_yield`` (POSIX), for the JIT to link."""
    try:
        return hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "sched_yield")
    except (OSError, TypeError):
        return False


_CAN_YIELD = _has_sched_yield()


def counters(n: int) -> np.ndarray:
    """Zeroed storage for ``n`` counters, each on its own cache line."""
    return np.zeros(n * LINE, np.int64)


def _pointer(context, builder, array_type, array, index):
    ary = context.make_array(array_type)(context, builder, array)
    return cgutils.get_item_pointer(context, builder, array_type, ary, [index])


@intrinsic
def load_acquire(typingctx, array, index):
    """``array[index]`` read with acquire ordering (int64 array)."""
    def codegen(context, builder, signature, args):
        ptr = _pointer(context, builder, signature.args[0], args[0], args[1])
        return builder.load_atomic(ptr, "acquire", 8)
    return types.int64(array, index), codegen


@intrinsic
def store_release(typingctx, array, index, value):
    """``array[index] = value`` written with release ordering (int64 array)."""
    def codegen(context, builder, signature, args):
        ptr = _pointer(context, builder, signature.args[0], args[0], args[1])
        value = context.cast(builder, args[2], signature.args[2], types.int64)
        builder.store_atomic(value, ptr, "release", 8)
        return context.get_dummy_value()
    return types.none(array, index, value), codegen


@intrinsic
def spin_pause(typingctx):
    """The CPU's spin-wait hint (x86 ``pause``; nothing elsewhere)."""
    def codegen(context, builder, signature, args):
        if _X86:
            pause = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
            builder.call(pause, [])
        return context.get_dummy_value()
    return types.none(), codegen


@intrinsic
def os_yield(typingctx):
    """libc's ``sched_yield()`` (called by name, so the cached code links it anew), or nothing
    where the C library has none."""
    def codegen(context, builder, signature, args):
        if _CAN_YIELD:
            function = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield")
            builder.call(function, [])
        return context.get_dummy_value()
    return types.none(), codegen


@njit(nogil=True, cache=True)
def publish(sync, counter, value):
    """Set ``counter`` to ``value`` (release): what this thread wrote before is now visible."""
    store_release(sync, counter * LINE, value)


@njit(nogil=True, cache=True)
def wait_for(sync, counter, value):
    """Spin until ``counter`` reaches ``value`` (acquire); yield the core after SPINS rounds.
    Returns the value seen (at least ``value``): a caller that knows the counter has passed
    a later value need not read it again before then."""
    spins = 0
    seen = load_acquire(sync, counter * LINE)
    while seen < value:
        if spins < SPINS:
            spin_pause()
            spins += 1
        else:
            os_yield()
        seen = load_acquire(sync, counter * LINE)
    return seen


@njit(nogil=True, cache=True)
def barrier(sync, thread, n_threads, value):
    """All of ``n_threads`` threads meet: each publishes ``value`` on counter ``thread`` and
    waits for every counter ``0 .. n_threads - 1`` to reach it. ``value`` must grow from one
    barrier to the next."""
    publish(sync, thread, value)
    for other in range(n_threads):
        wait_for(sync, other, value)
