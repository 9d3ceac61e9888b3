"""Multi-process training: which process this is, and the few collectives the trainer needs.

A run is distributed when ``WORLD_SIZE`` > 1 in the environment, as torchrun (or
``wavebench train --nproc N``) sets it; otherwise every helper here is a cheap no-op, so the
single-process trainer reads the same as the distributed one.

The trainer splits each global batch of ``batch_size`` examples into equal contiguous parts,
one per process, so N processes compute exactly the step that one process computes on the whole
batch, and a run may resume with a different number of processes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from wavebench_base.errors import InputError, PeerLost

# what gloo and NCCL say when a peer process has gone away
_PEER_GONE = ("connection closed by peer", "connection reset by peer", "broken pipe",
              "socket closed", "nccl communicator was aborted")


@dataclass(frozen=True)
class Processes:
    """This process's place in the run: ``rank`` of ``world`` (one machine: local rank = rank)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    def check_batch(self, size: int) -> None:
        """Refuse a global batch that does not split evenly over the processes."""
        if size % self.world:
            raise InputError(f"batch size {size} does not split evenly over {self.world} "
                             f"processes; use a multiple of {self.world}")

    def part(self, size: int) -> range:
        """This process's rows of a global batch of ``size`` (``size`` divisible by ``world``)."""
        share = size // self.world
        return range(self.rank * share, (self.rank + 1) * share)

    def sum(self, value: float) -> float:
        """``value`` summed over all processes (float64 on the CPU, gloo or NCCL)."""
        if not self.enabled:
            return value
        device = "cuda" if dist.get_backend() == "nccl" else "cpu"
        tensor = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return float(tensor.item())

    def any(self, flag: bool) -> bool:
        """True on every process when ``flag`` is true on any of them."""
        return self.sum(float(flag)) > 0 if self.enabled else flag

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def processes_from_env() -> Processes:
    """Read torchrun's ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (one process when unset)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise InputError("WORLD_SIZE, RANK and LOCAL_RANK must be integers") from None
    if world < 1 or not 0 <= rank < world:
        raise InputError(f"bad distributed environment: RANK={rank}, WORLD_SIZE={world}")
    return Processes(rank, world, local_rank)


def start(processes: Processes, device: torch.device) -> torch.device:
    """Join the process group (gloo on the CPU, NCCL on CUDA) and return this process's device.

    On CUDA each process takes the GPU of its local rank.
    """
    if not processes.enabled:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", processes.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        # the timeout bounds how long the others wait while rank 0 prepares data or validates
        dist.init_process_group(backend, rank=processes.rank, world_size=processes.world,
                                timeout=timedelta(minutes=30))
    return device


def as_peer_lost(exc: BaseException) -> BaseException:
    """``PeerLost`` when ``exc`` is a collective failing because another process died."""
    text = str(exc).lower()
    if isinstance(exc, RuntimeError) and any(marker in text for marker in _PEER_GONE):
        return PeerLost(f"another training process stopped ({str(exc).splitlines()[0][:200]})")
    return exc


def stop(processes: Processes) -> None:
    if processes.enabled and dist.is_initialized():
        dist.destroy_process_group()
