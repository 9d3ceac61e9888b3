"""Tests of the report figures: valid, non-blank PNGs that depend on exactly the right data."""
import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from reports.plots import plot_metric_distribution, plot_spectrogram_pair, plot_speed
from reports.table import make_results_table
from wavebench_base.errors import InputError


def _decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()  # decodes every byte: a truncated PNG fails here
    assert image.format == "PNG"
    return image.convert("RGB")


def _colours(png: bytes) -> int:
    return len(_decode(png).getcolors(maxcolors=1 << 24))


def _scores(extra_rows=()):
    rng = np.random.default_rng(0)
    rows = [{"system": s, "utterance": f"u{i}", "metric": "mcd",
             "value": float(rng.normal(m, 0.4))}
            for s, m in (("base", 5.0), ("new", 4.5)) for i in range(20)]
    rows.append({"system": "base", "utterance": "u0", "metric": "stoi", "value": 0.8})
    return make_results_table(rows + list(extra_rows), {"run": "r"})


def test_distribution_plot_is_a_non_blank_png_of_the_usable_values():
    png = plot_metric_distribution(_scores(), "mcd", unit="dB", higher_is_better=False)
    image = _decode(png)
    assert image.size[0] >= 400 and image.size[1] == 360  # 3.6 in at 100 dpi
    # Axes, boxes, coloured points and anti-aliased text: far more than a blank canvas's 1.
    assert _colours(png) > 100
    # Failed rows are not drawn: adding them (even with wild values) changes nothing.
    failed = [{"system": "base", "utterance": "bad", "metric": "mcd", "value": 1e3,
               "status": "error"},
              {"system": "new", "utterance": "nan", "metric": "mcd", "value": float("nan")}]
    assert plot_metric_distribution(_scores(failed), "mcd", unit="dB",
                                    higher_is_better=False) == png
    # A usable row does change it.
    extra = [{"system": "new", "utterance": "u99", "metric": "mcd", "value": 9.0}]
    assert plot_metric_distribution(_scores(extra), "mcd", unit="dB",
                                    higher_is_better=False) != png


def test_distribution_plot_refuses_an_absent_metric():
    with pytest.raises(InputError, match=r"no usable values of metric 'stio' to plot; "
                                         r"metrics: mcd, stoi"):
        plot_metric_distribution(_scores(), "stio")


def _tone(sr=8000, seconds=0.5, freq=440.0):
    t = np.arange(int(sr * seconds)) / sr
    return np.sin(2 * np.pi * freq * t)


def test_spectrogram_pair_is_deterministic_and_sees_the_difference():
    ref = _tone()
    noisy = ref + np.random.default_rng(1).normal(0, 0.05, ref.size)
    png = plot_spectrogram_pair(ref, noisy, 8000, title="utt 1")
    assert _decode(png).size == (800, 500)  # 8 x 5 in at 100 dpi
    assert _colours(png) > 100
    assert plot_spectrogram_pair(ref, noisy, 8000, title="utt 1") == png
    assert plot_spectrogram_pair(ref, ref, 8000, title="utt 1") != png
    # Different lengths and a clip shorter than the window are fine.
    assert _colours(plot_spectrogram_pair(ref[:300], ref, 8000)) > 100


@pytest.mark.parametrize("reference, generated, rate, match", [
    (np.zeros((2, 100)), np.zeros(100), 8000,
     r"reference audio must be a 1-D numeric array, got shape \(2, 100\)"),
    (np.zeros(100), np.array(["a", "b"]), 8000, r"generated audio must be a 1-D numeric"),
    (np.zeros(100), np.zeros(1), 8000, r"generated audio has 1 samples; need at least 2"),
    (np.array([0.0, np.nan, 0.0]), np.zeros(100), 8000, r"reference audio has NaN or Inf"),
    (np.zeros(100), np.zeros(100), 0, r"sample_rate must be a positive integer, got 0"),
    (np.zeros(100), np.zeros(100), 8000.0, r"sample_rate must be a positive integer, got 8000.0"),
])
def test_spectrogram_pair_refuses_bad_audio(reference, generated, rate, match):
    with pytest.raises(InputError, match=match):
        plot_spectrogram_pair(reference, generated, rate)


def _speed():
    return pd.DataFrame({"device": ["cpu", "cpu", "cpu", "cpu", "cuda", "cuda"],
                         "sampler": ["naive", "naive", "cached", "cached", "cuda-graph",
                                     "cuda-graph"],
                         "batch": [1, 8, 1, 8, 1, 8],
                         "samples_per_s": [55.0, 410.0, 3.1e3, 2.2e4, 9e3, 7e4],
                         "peak_mem_mb": [10, 20, 10, 20, 300, 400]})


def test_speed_chart_is_a_png_and_skipped_rows_are_left_out():
    png = plot_speed(_speed())
    assert _colours(png) > 100
    skipped = pd.concat([_speed(), pd.DataFrame({"device": ["mps"], "sampler": ["cached"],
                                                 "batch": [1], "samples_per_s": [np.nan]})],
                        ignore_index=True)
    assert plot_speed(skipped) == png  # a skipped device (no speed) draws nothing
    faster = _speed().assign(samples_per_s=lambda d: d["samples_per_s"] * 3)
    assert plot_speed(faster) != png


@pytest.mark.parametrize("change, match", [
    (lambda d: d.drop(columns="batch"), r"speed table is missing column\(s\) batch; it needs "
                                        r"device, sampler, batch, samples_per_s"),
    (lambda d: d.assign(samples_per_s=np.nan), r"speed table has no row with a samples_per_s"),
    (lambda d: d.assign(samples_per_s=0.0), r"samples_per_s <= 0; a log axis needs positive"),
])
def test_speed_chart_refuses_bad_tables(change, match):
    with pytest.raises(InputError, match=match):
        plot_speed(change(_speed()))


def test_spectrogram_matches_scipy_stft():
    from scipy.signal import stft

    from reports.plots import _log_spectrogram
    wave = np.random.default_rng(2).normal(size=3000)
    freqs, times, db = _log_spectrogram(wave, 8000, 256)
    ref_f, ref_t, z = stft(wave, fs=8000, window="hann", nperseg=256, noverlap=192,
                           boundary=None, padded=False)
    np.testing.assert_allclose(freqs, ref_f, rtol=1e-12)
    np.testing.assert_allclose(times, ref_t, rtol=1e-12)
    # Same periodic Hann window and window-sum scaling; 1e-9 dB allows FFT rounding only.
    np.testing.assert_allclose(db, 20 * np.log10(np.abs(z) + 1e-10), atol=1e-9)


def test_package_exports_the_plots_lazily():
    import reports
    assert reports.plot_speed is plot_speed
    with pytest.raises(AttributeError, match="has no attribute 'plot_nothing'"):
        reports.plot_nothing  # noqa: B018
