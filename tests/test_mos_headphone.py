"""The Woods antiphase headphone check: the signal, the packet, and screening end to end."""
import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from test_mos_analysis_sim import import_ratings, load_sim_packet, simulate_study
from test_mos_packet import _build, make_systems

from wavebench.mos.analysis.report import AnalysisOptions, run_analysis
from wavebench.mos.packet.quality_checks import woods_trial
from wavebench.mos.packet.validate import validate_packet

RATE = 16000


def tone_levels(stereo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per tone: RMS at each ear (headphones) and RMS of L + R (both channels through one
    loudspeaker, the worst case of cancelling in the air)."""
    n, gap = RATE, RATE // 2
    tones = [stereo[k * (n + gap):k * (n + gap) + n] for k in range(3)]
    ear = np.array([np.sqrt(np.mean(t[:, 0] ** 2)) for t in tones])
    speaker = np.array([np.sqrt(np.mean((t[:, 0] + t[:, 1]) ** 2)) for t in tones])
    return ear, speaker


@pytest.mark.parametrize("seed", range(6))
def test_the_quiet_tone_is_quietest_on_headphones_and_not_on_a_loudspeaker(seed):
    stereo, answer = woods_trial(RATE, np.random.default_rng(seed))
    assert stereo.shape == (3 * RATE + 2 * RATE // 2, 2)
    ear, speaker = tone_levels(stereo)
    others = [k for k in range(3) if k != answer - 1]
    assert 20 * np.log10(ear[others] / ear[answer - 1]) == pytest.approx([6.0, 6.0], abs=0.01)
    assert np.argmin(speaker) != answer - 1  # the antiphase tone vanishes in the air
    assert speaker.min() < 1e-12
    # about the level speech is aligned to: -26 dB RMS for the loud tones (ramps aside)
    assert 20 * np.log10(ear.max()) == pytest.approx(-26.0, abs=0.6)


@pytest.fixture(scope="module")
def woods_packet(tmp_path_factory):
    root = tmp_path_factory.mktemp("hp")
    inputs = make_systems(root / "in")
    out = root / "out"
    _build(inputs, out, anchors=["mnru10"], headphone_check="woods", exports=["trials"])
    return out


def test_packet_has_six_stereo_trials_after_calibration_and_validates(woods_packet):
    assert validate_packet(woods_packet).errors == []
    key = json.loads((woods_packet / "private" / "key.json").read_text())
    by_list = {}
    for trial in key["trials"].values():
        by_list.setdefault(trial["list_id"], []).append(trial)
    for trials in by_list.values():
        kinds = [t["trial_type"] for t in sorted(trials, key=lambda t: t["position"])]
        assert kinds[:7] == ["calibration"] + ["headphone"] * 6
    manifest = json.loads((woods_packet / "packet" / "manifest.json").read_text())
    answers = set()
    for trial in (t for t in key["trials"].values() if t["trial_type"] == "headphone"):
        info = sf.info(str(woods_packet / "packet" / manifest["audio"][trial["stimuli"][0]]))
        assert info.channels == 2 and info.subtype == "PCM_16"
        answers.add(trial["expected"]["choice"])
    assert answers <= {"1", "2", "3"} and len(answers) > 1  # not always the same position
    trials_csv = pd.read_csv(woods_packet / "packet" / "exports" / "trials.csv", dtype=str)
    assert (trials_csv["trial_type"] == "headphone").sum() == 6 * len(by_list)


def test_a_rater_on_loudspeakers_is_screened_out(woods_packet, tmp_path):
    sim = load_sim_packet(woods_packet)
    paths = simulate_study(sim, tmp_path / "results", bad={"L02": "speakers"})
    import_ratings(paths, woods_packet, tmp_path / "ratings.csv")
    result = run_analysis(tmp_path / "ratings.csv", woods_packet, tmp_path / "report",
                          AnalysisOptions(n_boot=100, plots=False))
    sessions = result.screening.sessions.set_index("list_id")
    assert set(sessions.index[sessions["excluded"]]) == {"L02"}
    assert sessions.loc["L02", "exclusion_reasons"] == "headphone_check"
    raters = pd.read_csv(tmp_path / "report" / "per_rater.csv").set_index("rater_id")
    failed = sessions.loc["L02", "rater_id"]
    assert raters.loc[failed, "headphone_score"] == 0.0
    assert (raters.drop(index=failed)["headphone_score"] == 1.0).all()
