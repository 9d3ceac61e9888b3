"""Shared fixtures and small helpers.

The recorded files the tests read are committed under ``tests/data`` (sources and licences in
``tests/data/README.md``), so the suite needs nothing beside the clone.
"""
import pytest
import torch


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
