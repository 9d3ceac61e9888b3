"""`wavebench score` without --reference: only metrics that need none, availability checked
first, a note for metrics that resample. The plumbing is tested with a small metric registered
for the test (RMS level in dB, worked by hand); DNSMOS itself is in test_metrics_dnsmos.py."""
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import soxr

from metrics import METRICS, MetricSpec
from metrics.registry import GENERATED_INPUTS
from wavebench.cli import main
from wavebench.score import check_metric_names, reference_free_metrics, score
from wavebench_base.errors import InputError, MissingDependencyError

RATE = 16000


def rms_db(*, generated, sample_rate):
    """RMS level in dB of the audio at 16 kHz (resampled if needed, like DNSMOS)."""
    if sample_rate != RATE:
        generated = soxr.resample(generated, sample_rate, RATE)
    return float(10 * np.log10(np.mean(np.square(generated, dtype=np.float64))))


LEVEL = MetricSpec("rms_level", "dB", True, False, rms_db, "RMS level (test metric)",
                   inputs=GENERATED_INPUTS, aligned=False, rate=RATE)


@pytest.fixture
def registry(monkeypatch):
    """The registry with only the test metric as reference-free (DNSMOS may be installed)."""
    for name, spec in list(METRICS.items()):
        if spec.inputs == GENERATED_INPUTS:
            monkeypatch.delitem(METRICS, name)
    monkeypatch.setitem(METRICS, "rms_level", LEVEL)
    return METRICS


def tone(amplitude, seconds=0.5, rate=RATE):
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


@pytest.fixture
def generated(tmp_path):
    folder = tmp_path / "music"
    (folder / "sub").mkdir(parents=True)
    sf.write(folder / "quiet.wav", tone(0.1), RATE, subtype="FLOAT")
    sf.write(folder / "sub/loud.wav", tone(0.5), RATE, subtype="FLOAT")
    return folder


def test_without_a_reference_every_file_is_scored_with_the_reference_free_metrics(
        registry, generated, tmp_path):
    lines = []
    result = score(generated={"music": generated}, out_dir=tmp_path / "out", progress=False,
                   log=lines.append)
    assert lines == ["no --reference: scoring only the metrics that need none (rms_level)"]
    table = pd.read_csv(result.per_utterance).set_index("utterance")
    assert set(table["metric"]) == {"rms_level"} and set(table["status"]) == {"ok"}
    # a sine of amplitude A has mean square A^2 / 2
    for key, amplitude in (("quiet", 0.1), ("sub/loud", 0.5)):
        assert table.loc[key, "value"] == pytest.approx(10 * np.log10(amplitude ** 2 / 2),
                                                        abs=1e-3)
    assert result.notes == []  # every file at the metric's own rate


def test_audio_at_another_rate_is_noted_once(registry, tmp_path):
    folder = tmp_path / "g"
    folder.mkdir()
    for i in range(3):
        sf.write(folder / f"{i}.wav", tone(0.25, rate=22050), 22050, subtype="FLOAT")
    result = score(generated={"g": folder}, out_dir=tmp_path / "out", progress=False,
                   log=lambda _: None)
    assert result.notes == ["rms_level: audio at 22050 Hz resampled to 16000 Hz inside the metric"]


def test_reference_free_metrics_run_beside_pair_metrics(registry, generated, tmp_path):
    result = score(reference_dir=generated, generated={"same": generated},
                   out_dir=tmp_path / "out", metrics=["mcd", "rms_level"], progress=False,
                   log=lambda _: None)
    table = pd.read_csv(result.per_utterance).set_index(["utterance", "metric"])["value"]
    assert table[("quiet", "mcd")] == pytest.approx(0.0, abs=1e-9)  # a file against itself
    assert table[("quiet", "rms_level")] == pytest.approx(10 * np.log10(0.1 ** 2 / 2), abs=1e-3)


def test_names_are_checked_before_any_work(registry):
    with pytest.raises(InputError, match="metric 'mcd' compares with a reference: give "
                                         "--reference DIR"):
        check_metric_names(["rms_level", "mcd"], reference=False)
    with pytest.raises(InputError, match="'nll_bits' does not score audio files"):
        check_metric_names(["nll_bits"], reference=True)
    assert check_metric_names(None, reference=True, log=None) == (
        "mcd", "c0_rmse_db", "mel_l1", "stoi", "estoi")


def test_a_metric_whose_package_is_missing_names_the_install_command(registry, monkeypatch):
    spec = MetricSpec("absent", "", True, False, rms_db, "needs a package that is not there",
                      inputs=GENERATED_INPUTS, requires=(("numpy", "no_such_module_wavebench"), "absent"))
    monkeypatch.setitem(METRICS, "absent", spec)
    assert reference_free_metrics() == ("rms_level",)  # not installed: not a default
    with pytest.raises(MissingDependencyError,
                       match=r"metric 'absent' needs numpy and no_such_module_wavebench, and "
                             r"no_such_module_wavebench is not installed: pip install "
                             r"'wavebench\[absent\]'"):
        check_metric_names(["absent"], reference=False)


def test_no_installed_reference_free_metric_is_one_line(monkeypatch, generated, tmp_path,
                                                         capsys):
    for name, spec in list(METRICS.items()):
        if spec.inputs == GENERATED_INPUTS:
            monkeypatch.delitem(METRICS, name)
    assert main(["score", "--generated", str(generated), "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: no --reference, and no metric that needs none is installed: pip "
                   "install 'wavebench[dnsmos]' for DNSMOS, or give --reference DIR"]
    assert not (tmp_path / "o").exists()


def test_oracle_and_checkpoint_need_a_reference(generated, tmp_path, capsys):
    for extra in (["--generated", str(generated), "--oracle", "mulaw"], ["--checkpoint", "x.pt"]):
        code = main(["score", "-o", str(tmp_path / "o"), *extra])
        assert code == 2
        assert "need --reference DIR" in capsys.readouterr().err
