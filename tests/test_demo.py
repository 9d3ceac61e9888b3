"""`wavebench demo` end to end: the README's main command, on the embedded default only."""
import importlib.util

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import norm

from metrics import DEFAULT_METRICS, score_pair
from reference_model.checkpoint import load_checkpoint
from reference_model.config import PRESETS
from reference_model.embedded import write_embedded_audio
from reference_model.features import log_mel
from reference_model.model import WaveNet
from reference_model.mulaw import mu_law_decode, mu_law_encode
from wavebench.cli import main
from wavebench.demo import (
    build_mos_packet,
    copy_synthesize,
    crop_references,
    demo_sampler,
    run_demo,
    spread_over_families,
)
from wavebench.score_checkpoint import likelihood_record
from wavebench.score_worker import oracle_audio
from wavebench_base.audio import load_audio, save_wav


@pytest.mark.slow
def test_demo_runs_end_to_end_and_repeats_itself(tmp_path, capsys):
    code = main(["demo", "-o", str(tmp_path / "a"), "--steps", "30", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "naive equals cached sample for sample" in err  # exact agreement (float64)
    report = tmp_path / "a" / "report"
    assert (report / "report.html").stat().st_size > 10_000
    summary = pd.read_csv(report / "summary.csv")
    # the naive sampler only checks the first hop of cached's copies: it is not scored
    assert set(summary["system"]) == {"tiny", "predictor_only", "oracle_mulaw", "oracle_noise40"}
    assert {"mcd", "mel_l1", "stoi", "estoi", "nll_bits"} <= set(summary["metric"])
    if importlib.util.find_spec("speechmos") and importlib.util.find_spec("onnxruntime"):
        assert {"dnsmos_ovrl", "dnsmos_p808"} <= set(summary["metric"])  # wavebench[dnsmos]
    paper = (report / "paper.md").read_text()
    assert "| tiny" in paper and "MCD (dB) ↓" in paper
    means = summary.set_index(["system", "metric"])["mean"]
    assert means[("oracle_mulaw", "mcd")] < means[("oracle_noise40", "mcd")]
    assert means[("oracle_mulaw", "mcd")] < means[("tiny", "mcd")]
    # the training curve: a validation every 3 steps, with its time
    training = pd.read_csv(report / "training.csv")
    assert list(training["step"]) == list(range(0, 31, 3))
    assert training["seconds"].is_monotonic_increasing
    page = (report / "report.html").read_text()
    assert "Reading these numbers" in page and "<h2>Training</h2>" in page
    speed = pd.read_csv(tmp_path / "a" / "speed" / "speed.csv")
    assert set(speed["sampler"]) == {"naive", "cached", "fused"}
    assert "open " in out and "report.html" in out
    # a noise-excited copy of a loud clip can reach full scale (the predictor alone, on white
    # noise, clips formants_014), so whether a copy clips depends on the draw: a clipped copy
    # leaves its item out of the packet, and two or more skip it (tests below)
    packet = (tmp_path / "a" / "mos" / "packet" / "index.html").exists()
    assert packet == ("listening test: open" in out)
    assert packet or ("MOS packet skipped" in err and "clipped" in err)
    # the same seed gives the same report: every table but the clocks
    assert main(["demo", "-o", str(tmp_path / "b"), "--steps", "30", "--no-progress"]) == 0
    again = tmp_path / "b" / "report"
    for name in ("summary.csv", "results.csv", "comparisons.csv", "paper.md"):
        assert (again / name).read_bytes() == (report / name).read_bytes(), name
    assert pd.read_csv(again / "training.csv").drop(columns="seconds").equals(
        training.drop(columns="seconds"))


#: What the default demo must keep over an untrained model of the same shape (its predictor
#: included) on its clips (measured on a 2-core AMD EPYC, family 25 model 1, AVX2: trained
#: against untrained, mcd 3.09 / 13.5 dB, c0_rmse_db 2.08 / 26.0 dB, mel_l1 0.46 / 3.41,
#: nll_bits 2.97 / 4.91, stoi 0.349 / -0.048; about half of each gap or less, so that a
#: regression in training fails here).
MARGINS = {"mcd": 5.0, "c0_rmse_db": 12.0, "mel_l1": 1.4, "nll_bits": 0.9}
#: The quality the README documents for the demo's copies (issue 16's targets).
DOCUMENTED = {"mcd": 5.0, "mel_l1": 0.8, "nll_bits": 3.0}


@pytest.mark.slow
def test_the_trained_demo_model_beats_an_untrained_one(tmp_path):
    result = run_demo(tmp_path, progress=False, log=lambda _line: None)
    # at most one copy clipped (that item is then left out of the packet)
    assert result.mos_page is not None and result.mos_page.exists()
    trained = pd.read_csv(result.out_dir / "report" / "summary.csv").set_index(
        ["system", "metric"])["mean"].xs("tiny")
    torch.manual_seed(0)
    config = load_checkpoint(result.out_dir / "train" / "best.pt")[0].config  # lpc_order too
    untrained = WaveNet(config).eval()
    references = {path: load_audio(path).audio
                  for path in sorted((result.out_dir / "references").glob("*.wav"))}
    hop = config.hop_length
    mels = np.stack([log_mel(a[: a.size // hop * hop], config) for a in references.values()])
    copy_synthesize(untrained, references, mels, tmp_path / "untrained", demo_sampler(untrained),
                    progress=False, temperature=PRESETS["tiny"].temperature)
    scores = {name: [] for name in (*DEFAULT_METRICS, "nll_bits")}
    for path, audio in references.items():
        generated = load_audio(tmp_path / "untrained" / path.name).audio
        for name, value in score_pair(DEFAULT_METRICS, reference=audio, generated=generated,
                                      sample_rate=config.sample_rate).items():
            scores[name].append(value.value)
        record = likelihood_record(untrained, "untrained", path.stem, audio, [])
        scores["nll_bits"].append(record["rows"][0]["value"])
    baseline = {name: float(np.nanmean(values)) for name, values in scores.items()}
    print({name: (round(trained[name], 3), round(baseline[name], 3)) for name in baseline})
    for name, margin in MARGINS.items():
        assert trained[name] < baseline[name] - margin, (name, trained[name], baseline[name])
    for name, bound in DOCUMENTED.items():
        assert trained[name] <= bound, (name, trained[name])
    # the intelligibility metrics rise too, though both are near the floor for these sounds
    assert trained["stoi"] > baseline["stoi"] and trained["estoi"] > baseline["estoi"]



def demo_references(folder):
    """The demo's four validation clips as it scores them: the first second, as 16-bit WAV."""
    rate = PRESETS["tiny"].model.sample_rate
    clips = spread_over_families(write_embedded_audio(folder / "full", sample_rate=rate), 4)
    return crop_references(clips, folder / "references", 1.0, rate)


def test_the_noise_oracle_scores_an_mcd_of_about_5_db_on_the_demo_clips(tmp_path):
    """What the demo's preface and the ORACLES comment say of it, on the same four clips."""
    rate = PRESETS["tiny"].model.sample_rate
    mcds = [score_pair(("mcd",), reference=audio, generated=oracle_audio("noise40", audio),
                       sample_rate=rate)["mcd"].value
            for audio in demo_references(tmp_path).values()]
    print(f"noise40 oracle, mean MCD {np.mean(mcds):.3f} dB on the demo's clips")
    assert 4.5 < np.mean(mcds) < 5.5


def test_predictions_as_sharp_as_the_noise_oracle_cost_about_3_2_bits_on_the_demo_clips(tmp_path):
    """The preface's yardstick, worked independently of the model: a predictive distribution
    that is a Gaussian of -40 dBFS spread centred on each true sample, binned into the 256
    mu-law codes (bin edges halfway between the codes' values), scores this many bits."""
    values = np.asarray(mu_law_decode(np.arange(256), 256), dtype=np.float64)
    edges = np.concatenate([[-np.inf], (values[1:] + values[:-1]) / 2, [np.inf]])
    bits = []
    for audio in demo_references(tmp_path).values():
        audio = audio.astype(np.float64)
        codes = mu_law_encode(audio, 256)
        p = norm.cdf(edges[codes + 1], audio, 0.01) - norm.cdf(edges[codes], audio, 0.01)
        bits.append(-np.mean(np.log2(p)))
    print(f"a Gaussian of -40 dBFS spread around the truth: {np.mean(bits):.3f} bits per sample")
    assert np.mean(bits) == pytest.approx(3.2, abs=0.1)


def clipped_copies(tmp_path, references, clipped: set):
    """Copies of the references (their mu-law oracle), those named in ``clipped`` scaled to a
    peak of 2.5 and hard-limited to [-1, 1], as a sampler limits a copy that overshoots."""
    folder = tmp_path / "generated" / "tiny"
    rate = PRESETS["tiny"].model.sample_rate
    for path, audio in references.items():
        copy = oracle_audio("mulaw", audio)
        if path.stem in clipped:
            copy = np.clip(2.5 * copy / np.max(np.abs(copy)), -1.0, 1.0)
        save_wav(folder / path.name, copy, rate)
    return folder


def test_a_clipped_copy_leaves_its_item_out_of_the_demo_packet(tmp_path):
    references = demo_references(tmp_path)
    lines = []
    copies = clipped_copies(tmp_path, references, {"formants_014"})
    page = build_mos_packet(tmp_path, references, copies, PRESETS["tiny"].model.sample_rate,
                            lines.append)
    assert page is not None and page.exists()
    assert any(line.strip().startswith("formants_014 left out of the MOS packet")
               and "clipped" in line for line in lines), lines
    design = pd.read_csv(tmp_path / "mos" / "private" / "design.csv")
    assert set(design["item"]) == {"chords_004", "chords_019", "tones_009"}
    assert set(design["trial_type"]) == {"rating"}  # no hold-out: no calibration, gold or trap
    assert "3 items (no hold-out)" in lines[-1]


def test_the_demo_packet_is_skipped_when_two_copies_clip(tmp_path):
    references = demo_references(tmp_path)
    lines = []
    copies = clipped_copies(tmp_path, references, {"formants_014", "tones_009"})
    page = build_mos_packet(tmp_path, references, copies, PRESETS["tiny"].model.sample_rate,
                            lines.append)
    assert page is None and not (tmp_path / "mos").exists()
    assert sum("left out of the MOS packet" in line for line in lines) == 2
    assert "MOS packet skipped: 2 of 4 copies are fit to play" in lines[-1]


def test_unclipped_copies_make_a_packet_with_a_hold_out(tmp_path):
    references = demo_references(tmp_path)
    lines = []
    copies = clipped_copies(tmp_path, references, set())
    page = build_mos_packet(tmp_path, references, copies, PRESETS["tiny"].model.sample_rate,
                            lines.append)
    assert page is not None and "4 items (1 hold-out)" in lines[-1]
    design = pd.read_csv(tmp_path / "mos" / "private" / "design.csv")
    rated = set(design.loc[design["trial_type"] == "rating", "item"])
    assert len(rated) == 3 and len(set(design["item"]) - rated) == 1  # the hold-out's trials
