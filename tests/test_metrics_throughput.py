"""Throughput arithmetic, checked on values worked by hand."""
import pytest

from metrics import DEFINITIONS, audio_seconds, rtf, samples_per_s, x_realtime
from wavebench_base.errors import InputError


def test_values_worked_by_hand():
    assert samples_per_s(samples=48000, seconds=1.5) == 32000.0
    assert audio_seconds(samples=48000, sample_rate=16000) == 3.0
    # 3 s of audio in 0.75 s of compute: RTF 0.25, four times real time
    assert rtf(compute_seconds=0.75, audio_seconds=3.0) == 0.25
    assert x_realtime(compute_seconds=0.75, audio_seconds=3.0) == 4.0


def test_rtf_and_x_realtime_are_inverse():
    value = rtf(compute_seconds=1.7, audio_seconds=0.3)
    assert value * x_realtime(compute_seconds=1.7, audio_seconds=0.3) == pytest.approx(1.0, rel=1e-15)


def test_every_quantity_has_a_definition_naming_its_direction():
    assert set(DEFINITIONS) == {"samples_per_s", "rtf", "x_realtime"}
    assert "compute time / audio time" in DEFINITIONS["rtf"] and "lower" in DEFINITIONS["rtf"]
    assert "higher" in DEFINITIONS["x_realtime"]


@pytest.mark.parametrize("call, message", [
    (lambda: samples_per_s(samples=10, seconds=0), "seconds must be a positive finite number, got 0"),
    (lambda: samples_per_s(samples=-1, seconds=1), "samples must be >= 0, got -1"),
    (lambda: rtf(compute_seconds=1, audio_seconds=0), "audio_seconds must be a positive"),
    (lambda: x_realtime(compute_seconds=float("nan"), audio_seconds=1), "compute_seconds must be"),
    (lambda: audio_seconds(samples=5, sample_rate=-8000), "sample_rate must be a positive"),
    (lambda: audio_seconds(samples=-5, sample_rate=8000), "samples must be >= 0"),
])
def test_bad_values_are_errors(call, message):
    with pytest.raises(InputError, match=message):
        call()
