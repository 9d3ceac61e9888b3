"""`wavebench train --nproc N`: start N training processes on this machine, as torchrun would.

Each child runs the same command line with torchrun's environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) and an even share of the CPU threads. When one
fails the others are stopped and its exit status is returned; when this launcher is killed, the
children die with it (Linux), so a killed run never leaves a process writing behind it.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from wavebench_base.errors import PEER_LOST_EXIT

PEER_GRACE_S = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _libc():
    """libc, loaded here in the launcher: after fork, a child may only make plain calls."""
    try:
        import ctypes
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _death_signal(libc, parent: int):
    """A preexec function asking Linux to SIGKILL the child when the launcher dies, even by
    SIGKILL; a launcher already gone by then ends the child at once."""
    def preexec() -> None:
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)
    return preexec


def child_env(rank: int, nproc: int, port: int) -> dict:
    env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(nproc),
               LOCAL_WORLD_SIZE=str(nproc), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    # without this each process would start one OpenMP thread per core and they would fight
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    return env


def launch(argv: list[str], nproc: int, log=print) -> int:
    """Run ``python -m wavebench *argv`` in ``nproc`` processes; return the first failure's
    exit status, or 0."""
    port = free_port()
    libc = _libc() if sys.platform == "linux" else None
    preexec = _death_signal(libc, os.getpid()) if libc is not None else None
    children = [subprocess.Popen([sys.executable, "-m", "wavebench", *argv],
                                 env=child_env(rank, nproc, port), preexec_fn=preexec)
                for rank in range(nproc)]

    def forward(signum, _frame):
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    first_failure = None
    try:
        while True:
            codes = [c.poll() for c in children]
            failed = [(rank, code) for rank, code in enumerate(codes) if code not in (None, 0)]
            if failed:
                # rank 0 reports errors: give it time to fail too (or to lose its peer) and
                # say why before the rest are stopped
                first_failure = first_failure or time.monotonic()
                if codes[0] is None and time.monotonic() - first_failure < PEER_GRACE_S:
                    time.sleep(0.1)
                    continue
                stop_all(children)
                return report_failure(dict(failed), nproc, log)
            if all(code == 0 for code in codes):
                return 0
            time.sleep(0.1)
    except KeyboardInterrupt:
        stop_all(children)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def report_failure(failed: dict, nproc: int, log) -> int:
    """The run's exit status from ``failed`` (rank: status, before the others were stopped):
    a process's own failure rather than a lost peer. Rank 0 prints its own errors; a process
    killed by a signal (out of memory, say) or another rank failing alone is reported here."""
    own = sorted((rank, code) for rank, code in failed.items() if code != PEER_LOST_EXIT)
    rank, code = own[0] if own else min(failed.items())
    if code < 0:
        log(f"error: training process {rank} of {nproc} was killed by signal {-code}; "
            "stopped the others")
        return 1
    if rank > 0:  # processes other than rank 0 keep input errors to themselves
        log(f"error: training process {rank} of {nproc} failed (exit {code}) and rank 0 did "
            "not; rerun with --debug to see its error")
    return code


def stop_all(children, grace: float = 10.0) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + grace
    for child in children:
        try:
            child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
