"""Shared fixtures: the shared data folder (skip when absent) and small helpers."""
from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the clone; tests that need it skip cleanly without it."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip("../shared/data is not beside this clone")
    return path


@pytest.fixture
def one_torch_thread():
    """Sampler tests run torch on one thread: where other processes share the cores, OpenMP
    spin-waits make two threads far slower (and timing-dependent)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
