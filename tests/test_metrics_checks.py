"""Input checks of the metrics: what raises InputError and what becomes NaN with a reason."""
import numpy as np
import pytest

from metrics.validation import HOP, REASONS, MetricUnavailable, check_pair
from wavebench_base.errors import InputError

RATE = 16000


def _audio(n, seed=0):
    return 0.1 * np.random.default_rng(seed).standard_normal(n)


def test_pair_within_one_hop_is_trimmed_to_the_shorter():
    reference, generated, rate = check_pair(_audio(5000), _audio(5000 + HOP, 1), RATE)
    assert reference.size == generated.size == 5000
    assert rate == RATE and reference.dtype == generated.dtype == np.float64


def test_pair_beyond_one_hop_is_an_error_naming_the_difference():
    with pytest.raises(InputError, match=r"lengths differ by 257 samples .*more than one hop, 256"):
        check_pair(_audio(5000), _audio(5000 + HOP + 1, 1), RATE)


def test_no_length_limit_when_the_metric_aligns_itself():
    reference, generated, _ = check_pair(_audio(5000), _audio(9000, 1), RATE,
                                         max_length_difference=None)
    assert (reference.size, generated.size) == (5000, 9000)


def test_stereo_is_an_error():
    with pytest.raises(InputError, match=r"reference: array of shape \(2, 5000\).*mono"):
        check_pair(np.stack([_audio(5000)] * 2), _audio(5000), RATE)


def test_integer_samples_are_an_error():
    with pytest.raises(InputError, match=r"generated: dtype int16.*float audio"):
        check_pair(_audio(5000), np.zeros(5000, dtype=np.int16), RATE)


@pytest.mark.parametrize("rate, message", [(0, "must be positive"), (-16000, "must be positive"),
                                           (16000.5, "whole number"), ("16k", "whole number"),
                                           (True, "whole number")])
def test_bad_sample_rate_is_an_error(rate, message):
    with pytest.raises(InputError, match=message):
        check_pair(_audio(5000), _audio(5000), rate)


def test_whole_float_sample_rate_is_accepted():
    assert check_pair(_audio(5000), _audio(5000), 16000.0)[2] == 16000


@pytest.mark.parametrize("side", ["reference", "generated"])
def test_nan_samples_give_a_reason_not_a_number(side):
    arrays = {"reference": _audio(5000), "generated": _audio(5000, 1)}
    arrays[side][10] = np.nan
    with pytest.raises(MetricUnavailable, match=f"nonfinite_{side}: 1 of 5000") as caught:
        check_pair(arrays["reference"], arrays["generated"], RATE)
    assert caught.value.reason == f"nonfinite_{side}"


def test_too_short_gives_a_reason():
    with pytest.raises(MetricUnavailable, match="too_short: 900 samples, fewer than 1024"):
        check_pair(_audio(900), _audio(900), RATE, min_length=1024)


def test_silent_reference_gives_a_reason_but_silent_generated_does_not():
    with pytest.raises(MetricUnavailable, match="silent_reference"):
        check_pair(np.zeros(5000), _audio(5000), RATE)
    check_pair(_audio(5000), np.zeros(5000), RATE)  # a silent output is a (bad) score, not a gap


def test_unknown_reason_is_refused():
    with pytest.raises(ValueError, match="unknown reason 'odd'; known: too_short"):
        MetricUnavailable("odd")
    assert set(REASONS) >= {"too_short", "silent_reference"}


def test_input_error_prefixes_the_file():
    assert str(InputError("2 channels", path="a/b.wav")) == "a/b.wav: 2 channels"
