"""The metric registry: specs, lookup with suggestions, NaN with a reason, shared computation."""
import math
from pathlib import Path

import numpy as np
import pytest

import metrics
from metrics import DEFAULT_METRICS, METRICS, MetricResult, get_metric, mcd, mel_l1, score_pair, stoi
from metrics.pitch import NAMES as PITCH_NAMES
from metrics.registry import PAIR_INPUTS
from wavebench_base.errors import InputError


def _pair(n=16000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    reference = 0.3 * np.sin(2 * np.pi * 200 * t) * (1 + np.sin(2 * np.pi * 3 * t)) \
        + 0.01 * rng.standard_normal(n)
    return reference, reference + 0.05 * rng.standard_normal(n)


def test_every_spec_is_complete_and_named_by_its_key():
    for name, spec in METRICS.items():
        assert spec.name == name
        assert isinstance(spec.higher_is_better, bool) and isinstance(spec.needs_reference, bool)
        assert callable(spec.function) and spec.description
    assert set(DEFAULT_METRICS) <= set(METRICS)
    assert {name for name, s in METRICS.items() if s.higher_is_better} == {
        "stoi", "estoi", "pesq_wb", "pesq_nb", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl",
        "dnsmos_p808", "vuv_f1"}
    assert {name for name, s in METRICS.items() if not s.needs_reference} == {
        "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808", "nll_bits"}
    assert METRICS["nll_bits"].inputs == ("log_probs", "targets")


def test_no_variant_is_printed_as_plain_mcd():
    descriptions = {name: spec.description for name, spec in METRICS.items()}
    assert [name for name in METRICS if name.startswith("mcd")] == ["mcd", "mcd_speech", "mcd_dtw"]
    assert "DTW" in descriptions["mcd_dtw"] and "40 dB" in descriptions["mcd_speech"]


def test_unknown_metric_suggests_the_close_one():
    with pytest.raises(InputError, match=r"^unknown metric 'stio'; did you mean 'stoi'\? "
                                         r"available: mcd, c0_rmse_db, .*, nll_bits$"):
        get_metric("stio")
    with pytest.raises(InputError, match=r"^unknown metric 'xyzzy'; available: mcd, "):
        get_metric("xyzzy")


def test_evaluate_equals_the_plain_function():
    reference, generated = _pair()
    result = get_metric("mcd").evaluate(reference=reference, generated=generated, sample_rate=16000)
    assert result == MetricResult(mcd(reference=reference, generated=generated, sample_rate=16000))
    assert result.ok and result.status == "ok"


def test_evaluate_turns_unavailable_into_nan_with_reason():
    reference, generated = _pair()
    result = get_metric("stoi").evaluate(reference=np.zeros(16000), generated=generated,
                                         sample_rate=16000)
    assert math.isnan(result.value) and result.status == "silent_reference" and not result.ok


def test_evaluate_rejects_wrong_inputs():
    with pytest.raises(InputError, match="metric 'nll_bits' takes log_probs, targets; got "
                                         "generated, reference, sample_rate"):
        get_metric("nll_bits").evaluate(reference=1, generated=2, sample_rate=3)


def test_evaluate_lets_input_errors_through():
    reference, generated = _pair()
    with pytest.raises(InputError, match="lengths differ"):
        get_metric("mel_l1").evaluate(reference=reference, generated=generated[:10000],
                                      sample_rate=16000)


def test_score_pair_equals_each_function_alone():
    reference, generated = _pair()
    # the pitch metrics (5 CPU-seconds per audio second and signal) are checked the same way
    # in tests/test_metrics_pitch.py
    names = [name for name, spec in METRICS.items()
             if spec.inputs == PAIR_INPUTS and name not in PITCH_NAMES]
    together = score_pair(names, reference=reference, generated=generated, sample_rate=16000)
    assert list(together) == names
    for name in names:
        alone = METRICS[name].function(reference=reference, generated=generated, sample_rate=16000)
        # joint and plain paths run the same arithmetic on the same arrays
        assert together[name].value == pytest.approx(alone, rel=1e-12, abs=1e-15), name


def test_score_pair_defaults_and_shared_nan():
    reference, generated = _pair(n=5000)  # 0.31 s: enough for MCD frames, too short for STOI
    results = score_pair(reference=reference, generated=generated, sample_rate=16000)
    assert list(results) == list(DEFAULT_METRICS)
    assert results["mcd"].ok and results["mel_l1"].ok
    assert results["stoi"].status == results["estoi"].status == "too_short"
    assert math.isnan(results["stoi"].value) and math.isnan(results["estoi"].value)


def test_score_pair_calls_each_joint_function_once(monkeypatch):
    calls = []
    original = METRICS["stoi"].joint

    def counting(**pair):
        calls.append(1)
        return original(**pair)

    for name in ("stoi", "estoi"):
        monkeypatch.setitem(METRICS, name, metrics.MetricSpec(
            **{**METRICS[name].__dict__, "joint": counting}))
    reference, generated = _pair()
    score_pair(["stoi", "estoi", "stoi"], reference=reference, generated=generated,
               sample_rate=16000)
    assert len(calls) == 1


def test_score_pair_refuses_non_pair_metrics_and_unknown_names():
    reference, generated = _pair()
    with pytest.raises(InputError, match="metric 'nll_bits' takes log_probs, targets, not an "
                                         "audio pair"):
        score_pair(["mcd", "nll_bits"], reference=reference, generated=generated, sample_rate=16000)
    with pytest.raises(InputError, match="did you mean 'mel_l1'"):
        score_pair(["mel_11"], reference=reference, generated=generated, sample_rate=16000)


def test_plain_functions_never_take_positional_audio():
    reference, generated = _pair()
    for function in (mcd, mel_l1, stoi):
        with pytest.raises(TypeError):
            function(reference, generated, 16000)


def test_nan_samples_give_nan_with_status_for_every_metric():
    reference, generated = _pair()
    generated[100] = np.nan
    names = [name for name, spec in METRICS.items() if spec.inputs == PAIR_INPUTS]
    results = score_pair(names, reference=reference, generated=generated, sample_rate=16000)
    assert {result.status for result in results.values()} == {"nonfinite_generated"}
    assert all(math.isnan(result.value) for result in results.values())


def test_stereo_is_an_error_for_every_metric():
    reference, generated = _pair()
    stereo = np.stack([generated, generated], axis=1)
    for name, spec in METRICS.items():
        if spec.inputs == PAIR_INPUTS:
            with pytest.raises(InputError, match=r"generated: array of shape \(16000, 2\)"):
                spec.evaluate(reference=reference, generated=stereo, sample_rate=16000)


def _packages_imported_with_metrics() -> set[str]:
    """Top-level packages loaded by ``import metrics`` in a fresh interpreter."""
    import subprocess
    import sys
    code = "import sys, metrics; print(' '.join({m.split('.')[0] for m in sys.modules}))"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=root)
    return set(out.stdout.split())


def test_metrics_imports_none_of_the_other_packages():
    assert not _packages_imported_with_metrics() & {"reference_model", "reports", "wavebench"}


def test_importing_metrics_leaves_the_heavy_libraries_to_first_use():
    # every scoring process imports metrics: scipy.signal (through pystoi), scipy.spatial,
    # scipy.special and numba are the bulk of its start-up; the metrics import them when used
    heavy = {"scipy", "pystoi", "numba", "pandas", "torch"}
    imported = _packages_imported_with_metrics()
    assert "numpy" in imported and not imported & heavy


def test_one_metrics_input_error_spares_the_others():
    rng = np.random.default_rng(4)
    # 8 kHz: mcd has no mel-cepstrum settings for it, the others do not care
    ref = 0.3 * np.sin(2 * np.pi * 300 * np.arange(16000) / 8000) + 0.01 * rng.standard_normal(16000)
    gen = ref + 0.02 * rng.standard_normal(ref.size)
    got = metrics.score_pair(["mcd", "c0_rmse_db", "mel_l1", "stoi"], reference=ref,
                             generated=gen, sample_rate=8000)
    assert got["mcd"].status == got["c0_rmse_db"].status == "unsupported_rate"
    assert math.isnan(got["mcd"].value) and "8000 Hz" in got["mcd"].detail
    assert got["mel_l1"].ok and got["stoi"].ok
    # lengths 1000 samples apart: the frame-aligned metrics decline, mcd_dtw aligns and scores
    long = np.concatenate([gen, gen[:1000]])
    got = metrics.score_pair(["mcd", "mcd_dtw"], reference=ref[:12000], generated=long[:13000],
                             sample_rate=16000)
    assert got["mcd"].status == "length_mismatch" and "differ by 1000 samples" in got["mcd"].detail
    assert got["mcd_dtw"].ok
    assert set(metrics.INPUT_REASONS) >= {"length_mismatch", "unsupported_rate", "bad_input"}
