"""nll_bits against torch's cross-entropy and values worked by hand."""
import numpy as np
import pytest

from metrics import bits_from_nats, nll_bits
from wavebench_base.errors import InputError

torch = pytest.importorskip("torch")


def test_uniform_guess_is_eight_bits():
    log_probs = np.log(np.full((3, 100, 256), 1 / 256))
    targets = np.random.default_rng(0).integers(0, 256, (3, 100))
    assert nll_bits(log_probs=log_probs, targets=targets) == pytest.approx(8.0, rel=1e-12)


def test_certain_prediction_is_zero_bits():
    log_probs = np.full((5, 4), -np.inf)
    log_probs[np.arange(5), [0, 1, 2, 3, 0]] = 0.0
    assert nll_bits(log_probs=log_probs, targets=np.array([0, 1, 2, 3, 0])) == 0.0


def test_matches_torch_cross_entropy():
    logits = torch.randn(2, 50, 256, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    targets = torch.randint(0, 256, (2, 50), generator=torch.Generator().manual_seed(1))
    nats = torch.nn.functional.cross_entropy(logits.reshape(-1, 256), targets.reshape(-1)).item()
    got = nll_bits(log_probs=torch.log_softmax(logits, -1).numpy(), targets=targets.numpy())
    assert got == pytest.approx(nats / np.log(2), rel=1e-12)  # both float64
    assert bits_from_nats(nats) == pytest.approx(got, rel=1e-12)


@pytest.mark.parametrize("log_probs, targets, message", [
    (np.zeros((4, 8)), np.zeros(5, dtype=int), r"shape \(4, 8\) and targets of shape \(5,\)"),
    (np.zeros(8), np.zeros((), dtype=int), r"need \(\.\.\., n, classes\)"),
    (np.log(np.full((4, 8), 1 / 8)), np.zeros(4), "targets: dtype float64; need integer"),
    (np.log(np.full((4, 8), 1 / 8)), np.array([0, 1, 8, 2]), "from 0 to 8; need 0 to 7 for 8"),
    (np.log(np.full((4, 8), 1 / 8)), np.array([0, -1, 3, 2]), "from -1 to 3"),
    (np.zeros((4, 8)), np.zeros(4, dtype=int), r"not normalized .* pass log_softmax\(logits\)"),
    (np.full((4, 8), np.nan), np.zeros(4, dtype=int), "log_probs: 32 NaN values"),
])
def test_bad_input_is_an_error(log_probs, targets, message):
    with pytest.raises(InputError, match=message):
        nll_bits(log_probs=log_probs, targets=targets)
