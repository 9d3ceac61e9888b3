"""PESQ: the published golden pair, pesq called directly, degradations, rates and bad input."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr
from degradations import add_noise, low_pass, mu_law_round_trip

from metrics import MetricUnavailable
from metrics.perceptual_quality import MAX_SECONDS, PESQ_RATE, pesq_nb, pesq_scores, pesq_wb
from wavebench_base.errors import InputError, MissingDependencyError

pesq = pytest.importorskip("pesq")  # the optional metric's package (wavebench[pesq])
DATA = Path(__file__).resolve().parent / "data"  # tests/data/README.md: sources and licences
VECTORS = DATA / "vectors"
SPEECH = DATA / "speech16k"
REPO = Path(__file__).resolve().parents[1]

# python-pesq's published scores of this pair (its README and tests), ITU reference C code
GOLDEN = {"pesq_wb": 1.0832337141036987, "pesq_nb": 1.6072081327438354}


def _golden_pair():
    paths = VECTORS / "speech.wav", VECTORS / "speech_bab_0dB.wav"
    (clean, rate), (noisy, _) = (soundfile.read(path) for path in paths)  # float64
    return clean, noisy, rate


def test_golden_pair():
    clean, noisy, rate = _golden_pair()
    assert rate == PESQ_RATE
    pair = {"reference": clean, "generated": noisy, "sample_rate": rate}
    # 1e-6 as specified; the C code computes in float32, so equality to the published digits
    # means the same code on the same samples
    assert pesq_wb(**pair) == pytest.approx(GOLDEN["pesq_wb"], abs=1e-6)
    assert pesq_nb(**pair) == pytest.approx(GOLDEN["pesq_nb"], abs=1e-6)
    assert pesq_scores(**pair) == pytest.approx(GOLDEN, abs=1e-6)


def test_values_are_pesq_called_directly_and_a_swap_cannot_happen_by_position():
    clean, noisy, rate = _golden_pair()
    for reference, generated in ((clean, noisy), (noisy, clean)):
        expected = {"pesq_wb": pesq.pesq(16000, reference, generated, "wb"),
                    "pesq_nb": pesq.pesq(16000, reference, generated, "nb")}
        # float64 at 16 kHz goes to pesq unchanged: the same bytes
        assert pesq_scores(reference=reference, generated=generated,
                           sample_rate=rate) == expected
        assert pesq_wb(reference=reference, generated=generated,
                       sample_rate=rate) == expected["pesq_wb"]
        assert pesq_nb(reference=reference, generated=generated,
                       sample_rate=rate) == expected["pesq_nb"]
    # PESQ is not symmetric (the reference decides the utterances and the level): swapped,
    # measured 1.044 (wb) and 1.154 (nb) against the published 1.083 and 1.607
    swapped = pesq_scores(reference=noisy, generated=clean, sample_rate=rate)
    assert abs(swapped["pesq_wb"] - GOLDEN["pesq_wb"]) > 0.01
    assert abs(swapped["pesq_nb"] - GOLDEN["pesq_nb"]) > 0.1
    with pytest.raises(TypeError):
        pesq_wb(clean, noisy, rate)  # keyword-only by design


def test_identity_gives_the_top_of_the_scale():
    clean, _, rate = _golden_pair()
    scores = pesq_scores(reference=clean, generated=clean, sample_rate=rate)
    # measured 4.6439 (wb) and 4.5486 (nb): the maxima of the P.862.2 and P.862.1 mappings
    assert scores["pesq_wb"] > 4.4 and scores["pesq_nb"] > 4.4
    assert scores == pytest.approx({"pesq_wb": 4.644, "pesq_nb": 4.549}, abs=1e-3)


@pytest.mark.parametrize("name", ["vm-login.flac", "agent-loginok.flac", "conf-getpin.flac"])
def test_degradations_lower_both_scores(name):
    clean, rate = soundfile.read(SPEECH / name)
    conditions = {"identity": clean, "snr10": add_noise(clean, 10), "snr0": add_noise(clean, 0),
                  "mu-law": mu_law_round_trip(clean),
                  "low-pass 4 kHz": low_pass(clean, 16000, 4000),
                  "low-pass 3 kHz": low_pass(clean, 16000, 3000)}
    scores = {condition: pesq_scores(reference=clean, generated=degraded, sample_rate=rate)
              for condition, degraded in conditions.items()}
    for metric in ("pesq_wb", "pesq_nb"):
        value = {condition: score[metric] for condition, score in scores.items()}
        # measured on these files: identity 4.64 / 4.55, 10 dB 1.03-1.06 / 1.15-1.27, 0 dB
        # 1.02-1.03 / 1.08-1.19, mu-law 3.5-3.9 / 3.8-4.1; margins are far below the gaps
        assert value["identity"] > value["mu-law"] + 0.3, metric
        assert value["identity"] > value["snr10"] + 1.0, metric
        assert value["snr10"] > value["snr0"], metric
        assert value["identity"] > value["low-pass 3 kHz"] + 0.01, metric
    wb = {condition: score["pesq_wb"] for condition, score in scores.items()}
    nb = {condition: score["pesq_nb"] for condition, score in scores.items()}
    # wideband hears the missing 4-8 kHz band (measured 0.35-0.67 lower)...
    assert wb["identity"] > wb["low-pass 4 kHz"] + 0.2
    # ...narrowband cannot: its model filters to the telephone band (300-3400 Hz), so a 4 kHz
    # low-pass leaves it at identity (measured at most 1e-4 lower)
    assert nb["low-pass 4 kHz"] == pytest.approx(nb["identity"], abs=1e-3)


def test_other_rates_are_resampled_to_16k():
    clean, noisy, _ = _golden_pair()
    resampled = {name: soxr.resample(audio, 16000, 22050, quality="VHQ")
                 for name, audio in (("reference", clean), ("generated", noisy))}
    scores = pesq_scores(**resampled, sample_rate=22050)
    # to 22050 Hz and back (soxr VHQ both ways) changes the samples slightly: measured
    # 7e-4 (wb) and 5e-7 (nb) from the 16 kHz values; 5e-3 leaves room for other soxr builds
    assert scores == pytest.approx(GOLDEN, abs=5e-3)
    assert scores["pesq_wb"] == pesq_wb(**resampled, sample_rate=22050)
    assert scores["pesq_nb"] == pesq_nb(**resampled, sample_rate=22050)


def test_silent_generated_is_no_utterances_not_pesqs_crash():
    clean, _, rate = _golden_pair()
    silent = np.zeros_like(clean)
    # the C code scores silence as NaN, which pesq's own error check cannot convert
    with pytest.raises(ValueError, match="cannot convert float NaN to integer"):
        pesq.pesq(16000, clean, silent, "wb")
    for function in (pesq_wb, pesq_nb, pesq_scores):
        with pytest.raises(MetricUnavailable, match="no_utterances: P.862 gave NaN") as raised:
            function(reference=clean, generated=silent, sample_rate=rate)
        assert raised.value.reason == "no_utterances"


def test_reference_without_an_utterance_is_no_utterances():
    clean, _, _ = _golden_pair()
    burst = np.zeros(16000)
    burst[4000:6400] = clean[20000:22400]  # 150 ms of speech: P.862 needs 200 ms in one run
    with pytest.raises(pesq.NoUtterancesError):
        pesq.pesq(16000, burst, burst, "wb")
    with pytest.raises(MetricUnavailable, match="no_utterances: P.862 found no utterance"):
        pesq_scores(reference=burst, generated=burst, sample_rate=16000)


def test_silent_reference():
    clean, _, rate = _golden_pair()
    with pytest.raises(MetricUnavailable) as raised:
        pesq_scores(reference=np.zeros_like(clean), generated=clean, sample_rate=rate)
    assert raised.value.reason == "silent_reference"


def test_too_short_is_decided_before_pesq():
    clean, noisy, rate = _golden_pair()
    with pytest.raises(pesq.BufferTooShortError):
        pesq.pesq(16000, clean[8000:9600], noisy[8000:9600], "wb")
    with pytest.raises(MetricUnavailable, match="too_short: 1600 samples, fewer than 4000"):
        pesq_wb(reference=clean[8000:9600], generated=noisy[8000:9600], sample_rate=rate)
    with pytest.raises(MetricUnavailable, match="too_short: 3999 samples, fewer than 4000"):
        pesq_scores(reference=clean[8000:11999], generated=noisy[8000:11999], sample_rate=rate)
    assert pesq_nb(reference=clean[8000:12000], generated=noisy[8000:12000],
                   sample_rate=rate) > 1.0  # exactly 1/4 s is scored
    # at 22050 Hz, 5513 samples resample to 4000 (soxr rounds 4000.36) and 5512 to 4000 too,
    # but 5512 is under 1/4 s: refused as such
    upsampled = soxr.resample(clean[8000:16000], 16000, 22050, quality="VHQ")
    with pytest.raises(MetricUnavailable, match="too_short: 5512 samples, fewer than 5513"):
        pesq_wb(reference=upsampled[:5512], generated=upsampled[:5512], sample_rate=22050)
    assert pesq_wb(reference=upsampled[:5513], generated=upsampled[:5513],
                   sample_rate=22050) > 4.0


def test_pairs_over_twenty_seconds_are_refused_before_pesq():
    rng = np.random.default_rng(0)
    speechless = 0.1 * rng.standard_normal(int(MAX_SECONDS * 22050) + 1)
    with pytest.raises(InputError, match=r"^PESQ of 20.0 s: the pesq C code corrupts") as raised:
        pesq_scores(reference=speechless, generated=speechless, sample_rate=22050)
    assert raised.value.reason == "too_long"
    assert pesq_wb(reference=speechless[:-1], generated=speechless[:-1],
                   sample_rate=22050) > 4.0  # 20 s exactly is scored


def test_nonfinite_and_integer_input():
    clean, noisy, rate = _golden_pair()
    broken = noisy.copy()
    broken[100] = np.nan
    with pytest.raises(MetricUnavailable) as raised:
        pesq_scores(reference=clean, generated=broken, sample_rate=rate)
    assert raised.value.reason == "nonfinite_generated"
    with pytest.raises(InputError, match="generated: dtype int16"):
        pesq_wb(reference=clean, generated=(noisy * 32767).astype(np.int16), sample_rate=rate)


def test_length_rules_and_inputs_not_modified():
    clean, noisy, rate = _golden_pair()
    copies = clean.copy(), noisy.copy()
    longer = np.concatenate([noisy, np.zeros(256)])
    assert pesq_scores(reference=clean, generated=longer, sample_rate=rate) == \
        pytest.approx(GOLDEN, abs=1e-6)  # trimmed back to the same pair
    with pytest.raises(InputError, match="lengths differ by 257 samples"):
        pesq_wb(reference=clean, generated=np.concatenate([longer, [0.0]]), sample_rate=rate)
    assert np.array_equal(clean, copies[0]) and np.array_equal(noisy, copies[1])


def test_pesq_is_imported_only_when_scoring():
    script = (
        "import sys\n"
        "import metrics, metrics.perceptual_quality as pq\n"
        "assert 'pesq' not in sys.modules, 'pesq imported with metrics'\n"
        "sys.modules['pesq'] = None  # as if not installed: import pesq raises ImportError\n"
        "import numpy as np\n"
        "audio = 0.1 * np.random.default_rng(0).standard_normal(16000)\n"
        "for function in (pq.pesq_wb, pq.pesq_nb, pq.pesq_scores):\n"
        "    try:\n"
        "        function(reference=audio, generated=audio, sample_rate=16000)\n"
        "    except pq.MissingDependencyError as error:\n"
        "        print(error)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    message = ("PESQ needs the pesq package, which is not installed: "
               "pip install 'wavebench[pesq]'\n")
    assert done.stdout == 3 * message
    assert issubclass(MissingDependencyError, InputError)  # the command line's one-line error
