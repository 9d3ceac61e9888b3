"""Guards before allocation when reading and resampling audio, and out-of-memory as one line.

Issue 17, item 8: a generated WAV whose header said 1 Hz, scored against 16 kHz references, was
resampled 16000-fold before its length was compared (3.5 GB for a 34 KB file; a 400 KB file
died with ``MemoryError: std::bad_alloc``). Rates are now bounded when the header is read,
lengths are compared at the reference's rate before resampling, a resample beyond a bound is
refused, and allocator failures in the scoring worker become one line naming the file.
"""
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import soxr

import metrics.mel
import wavebench_base.audio as audio_module
from wavebench.cli import main
from wavebench.score import score
from wavebench_base.audio import MAX_RATE, MIN_RATE, LoadedAudio, load_audio, resample_audio, resampled_length
from wavebench_base.errors import InputError

RATE = 16000


def speechlike(seconds, rate=RATE, seed=0):
    """A 150 Hz tone, amplitude-modulated, with a little noise (float32)."""
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * 150 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (x + 0.01 * np.random.default_rng(seed).standard_normal(t.size)).astype(np.float32)


def folders(tmp_path, generated, generated_rate, reference_seconds=1.0):
    """A reference folder with one 16 kHz file ``u.wav`` and a generated one at another rate."""
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    ref.mkdir()
    gen.mkdir()
    sf.write(ref / "u.wav", speechlike(reference_seconds), RATE)
    sf.write(gen / "u.wav", generated, generated_rate)
    return ref, gen


def run_score(ref, gen, out, metrics=("mcd", "mel_l1")):
    return score(reference_dir=ref, generated={"sys": gen}, out_dir=out, metrics=metrics,
                 progress=False, log=lambda _: None)


@pytest.fixture
def no_resampling(monkeypatch):
    """Fail the test if anything reaches the resampler."""
    def refuse(*args, **kwargs):
        raise AssertionError("soxr.resample was called")
    monkeypatch.setattr(soxr, "resample", refuse)


# ---- rates in the header ---------------------------------------------------------------------

@pytest.mark.parametrize("rate", [1, MIN_RATE - 1, MAX_RATE + 1])
def test_absurd_rate_is_refused_before_the_samples_are_read(tmp_path, monkeypatch, rate):
    path = tmp_path / "odd.wav"
    sf.write(path, speechlike(0.1), rate)

    def refuse(*args, **kwargs):
        raise AssertionError("samples were read")
    monkeypatch.setattr(sf.SoundFile, "read", refuse)
    with pytest.raises(InputError, match=rf"^{path}: the header says {rate} Hz; wavebench reads "
                                         rf"1000 to 768000 Hz \(corrupt header\?\)$"):
        load_audio(path)


@pytest.mark.parametrize("rate", [MIN_RATE, MAX_RATE])
def test_rates_at_the_bounds_are_read(tmp_path, rate):
    path = tmp_path / "edge.wav"
    sf.write(path, speechlike(0.01, rate=rate), rate)
    assert load_audio(path).sample_rate == rate


def test_one_hz_header_is_one_line_in_score_and_never_resampled(tmp_path, capsys, no_resampling):
    # the file: 34 KB of 16-bit samples said to be at 1 Hz (4.7 hours), which the old
    # code resampled to 272 million samples at 16 kHz before anything compared lengths
    ref, gen = folders(tmp_path, speechlike(17000 / RATE), 1)
    code = main(["score", "--reference", str(ref), "--generated", str(gen), "-o",
                 str(tmp_path / "out"), "--metrics", "mcd,mcd_dtw", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    expected = (f"error: {gen / 'u.wav'}: the header says 1 Hz; wavebench reads 1000 to 768000 "
                "Hz (corrupt header?)")
    assert code == 1 and err == [expected]


# ---- the resampled length, known before resampling ------------------------------------------

@pytest.mark.parametrize("rate, target", [(44100, 16000), (22050, 16000), (8000, 16000),
                                          (16000, 22050), (48000, 44100), (1000, 768000),
                                          (768000, 1000), (11025, 24000)])
def test_resampled_length_is_the_length_soxr_makes(rate, target):
    rng = np.random.default_rng(rate + target)
    for n in [1, 2, 3, 7, 40, 441, 1001, *rng.integers(1, 30000, 12)]:
        made = soxr.resample(np.zeros(int(n), np.float32), rate, target, quality="VHQ").size
        assert resampled_length(int(n), rate, target) == made, (n, rate, target)


def test_a_resample_beyond_the_bound_is_refused_before_anything_is_allocated(no_resampling):
    clip = LoadedAudio(np.ones(1000, np.float32), 1000, 1000, 1, "PCM_16")
    with pytest.raises(InputError, match=r"^x.wav: 1000 samples at 1000 Hz resampled to 16000 Hz "
                                         r"would be 16000 samples, more than wavebench holds "
                                         r"\(15999\); is the 1000 Hz in the header right\?$"):
        resample_audio(clip, 16000, "x.wav", max_samples=15999)
    assert resample_audio(clip, 1000, "x.wav", max_samples=1) is clip  # nothing to resample


def test_resample_audio_equals_loading_at_the_rate(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, speechlike(0.5, rate=22050), 22050)
    direct = load_audio(path, RATE)
    later = resample_audio(load_audio(path), RATE, path)
    assert np.array_equal(direct.audio, later.audio) and direct.notes == later.notes
    assert (later.sample_rate, later.original_rate) == (RATE, 22050)
    assert later.notes[-1] == "resampled 22050 -> 16000 Hz (soxr VHQ)"


# ---- lengths compared before resampling ------------------------------------------------------

def test_length_mismatch_is_found_before_resampling(tmp_path, no_resampling):
    # 2 s at 8 kHz against a 1 s reference: misaligned whatever the resampler would make
    ref, gen = folders(tmp_path, speechlike(2.0, rate=8000), 8000)
    result = run_score(ref, gen, tmp_path / "out")
    table = pd.read_csv(result.per_utterance).set_index("metric")
    assert set(table["status"]) == {"length_mismatch"} and table["value"].isna().all()
    assert any("u: sys: mcd, mel_l1: reference and generated lengths differ by 16000 samples "
               "(16000 vs 32000; more than one hop, 256); check alignment (at 16000 Hz; found "
               "before resampling from 8000 Hz)" == note for note in result.notes)


def test_a_metric_that_aligns_still_gets_the_resampled_audio(tmp_path):
    ref, gen = folders(tmp_path, speechlike(2.0, rate=8000), 8000)
    result = run_score(ref, gen, tmp_path / "out", metrics=("mcd", "mcd_dtw"))
    table = pd.read_csv(result.per_utterance).set_index("metric")
    assert table.loc["mcd", "status"] == "length_mismatch"
    assert table.loc["mcd_dtw", "status"] == "ok" and np.isfinite(table.loc["mcd_dtw", "value"])
    assert "u: sys resampled 8000 -> 16000 Hz (soxr VHQ)" in result.notes


@pytest.mark.parametrize("extra, status", [(256, "ok"), (257, "length_mismatch")])
def test_the_check_before_resampling_keeps_the_one_hop_tolerance(tmp_path, extra, status):
    # the longest 22.05 kHz file whose 16 kHz length is the reference's plus ``extra``
    n = max(n for n in range(22050 + 1000) if resampled_length(n, 22050, RATE) == RATE + extra)
    ref, gen = folders(tmp_path, speechlike(n / 22050, rate=22050)[:n], 22050)
    table = pd.read_csv(run_score(ref, gen, tmp_path / "out").per_utterance)
    assert set(table["status"]) == {status}


# ---- allocator failures in the scoring worker ------------------------------------------------

def huge_allocation(*args, **kwargs):
    """Ask NumPy for a pebibyte: fails at once with its own MemoryError subclass."""
    return np.empty(2 ** 50, dtype=np.uint8)


def test_out_of_memory_while_resampling_is_one_line_naming_the_file(tmp_path, capsys,
                                                                      monkeypatch):
    ref, gen = folders(tmp_path, speechlike(1.0, rate=22050), 22050)

    def bad_alloc(*args, **kwargs):
        raise MemoryError("std::bad_alloc")  # what soxr raised in the issue
    monkeypatch.setattr(soxr, "resample", bad_alloc)
    code = main(["score", "--reference", str(ref), "--generated", str(gen), "-o",
                 str(tmp_path / "out"), "--metrics", "mcd", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    expected = (f"error: {gen / 'u.wav'}: out of memory loading it (MemoryError: "
                "std::bad_alloc); score it with fewer --jobs, or shorten it")
    assert code == 1 and err == [expected]


def test_torch_style_allocator_failure_while_loading_is_one_line(tmp_path, capsys, monkeypatch):
    ref, gen = folders(tmp_path, speechlike(1.0), RATE)

    def cannot_allocate(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:114] DefaultCPUAllocator: can't "
                           "allocate memory: you tried to allocate 123 bytes")
    monkeypatch.setattr(audio_module, "_range_notes", cannot_allocate)
    code = main(["score", "--reference", str(ref), "--generated", str(gen), "-o",
                 str(tmp_path / "out"), "--metrics", "mcd", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert err[0].startswith(f"error: {ref / 'u.wav'}: out of memory loading it "
                             "(RuntimeError: [enforce fail at alloc_cpu.cpp:114] "
                             "DefaultCPUAllocator: can't allocate memory")


def test_other_runtime_errors_are_not_mistaken_for_memory(tmp_path, monkeypatch):
    ref, gen = folders(tmp_path, speechlike(1.0), RATE)

    def bug(*args, **kwargs):
        raise RuntimeError("a bug")
    monkeypatch.setattr(audio_module, "_range_notes", bug)
    with pytest.raises(RuntimeError, match="^a bug$"):
        run_score(ref, gen, tmp_path / "out")


def test_a_metric_out_of_memory_is_a_status_and_a_note_naming_the_file(tmp_path, monkeypatch):
    ref, gen = folders(tmp_path, speechlike(1.0), RATE)
    monkeypatch.setattr(metrics.mel, "framewise", huge_allocation)  # mel_l1's analysis
    result = run_score(ref, gen, tmp_path / "out")
    table = pd.read_csv(result.per_utterance).set_index("metric")
    assert table.loc["mel_l1", "status"] == "out_of_memory"
    assert np.isnan(table.loc["mel_l1", "value"])
    assert table.loc["mcd", "status"] == "ok"  # the other metrics of the pair are scored
    [note] = [note for note in result.notes if "out of memory" in note]
    assert note.startswith("u: sys: mel_l1: out of memory (MemoryError: Unable to "
                           "allocate 1.00 PiB")
    assert note.endswith(f"({gen / 'u.wav'})")
