"""End to end on real speech: `mos packet` -> simulated raters (page JSON) -> import -> analyze.

Systems are synthetic degradations of `speech16k` clips (low-pass, noise, coarse mu-law);
the simulated raters' true MOS per condition sets the order the analysis must recover.
"""
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from scipy import signal
from test_mos_analysis_sim import import_ratings, load_sim_packet, simulate_study

from wavebench.mos.analysis.report import AnalysisOptions, run_analysis
from wavebench.mos.packet import build as packet_module

SPEECH = Path(__file__).resolve().parent / "data" / "speech16k"  # see tests/data/README.md
TRUE = {"natural": 4.5, "lowpass": 3.6, "noisy": 3.0, "mulaw": 2.3, "lp3500": 1.6}
BAD = {"L02": "trap", "L05": "straight", "L09": "skip"}


def _systems(root: Path, n_items: int = 14) -> dict:
    files = sorted(SPEECH.glob("*.flac"))[:n_items]
    assert len(files) == n_items, f"tests/data/speech16k holds {len(files)} of {n_items} clips"
    rng = np.random.default_rng(0)
    lowpass = signal.butter(8, 2000, fs=16000, output="sos")
    mu = 255.0
    for f in files:
        x, fs = sf.read(f)
        x = x[: int(1.5 * fs)]
        coarse = np.round(np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu) * 8) / 8
        versions = {"natural": x, "lowpass": signal.sosfiltfilt(lowpass, x),
                    "noisy": x + 0.1 * np.std(x) * rng.standard_normal(x.size),
                    "mulaw": np.sign(coarse) * ((1 + mu) ** np.abs(coarse) - 1) / mu}
        for name, y in versions.items():
            (root / name).mkdir(parents=True, exist_ok=True)
            sf.write(root / name / f"{f.stem}.wav", y, fs)
    return {name: root / name for name in ("natural", "lowpass", "noisy", "mulaw")}


def test_packet_to_report_recovers_ranking_and_drops_bad_raters(tmp_path):
    dirs = _systems(tmp_path / "in")
    options = packet_module.PacketOptions(reference=f"natural={dirs['natural']}", votes=6,
                                          seed=3, anchors=["lp3500"])
    packet_module.build_packet([f"{n}={dirs[n]}" for n in ("lowpass", "noisy", "mulaw")],
                               tmp_path / "pk", options)
    sim = load_sim_packet(tmp_path / "pk")
    paths = simulate_study(sim, tmp_path / "results", bad=BAD, true_mos=TRUE)
    import_ratings(paths, tmp_path / "pk", tmp_path / "ratings.csv")
    result = run_analysis(tmp_path / "ratings.csv", tmp_path / "pk", tmp_path / "report",
                          AnalysisOptions(n_boot=300, plots=False))
    assert list(result.system_scores["condition"]) == sorted(TRUE, key=TRUE.get, reverse=True)
    sessions = result.screening.sessions
    assert set(sessions.loc[sessions["excluded"], "list_id"]) == set(BAD)
    # Every check type of the real packet was scored: gold and trap columns are filled.
    raters = pd.read_csv(tmp_path / "report" / "per_rater.csv")
    assert (raters["gold_total"] == 2).all()
    assert raters.loc[raters["traps_ok"] == False, "rater_id"].tolist() == ["r001"]  # noqa: E712


def test_mushra_packet_hidden_reference_rule(tmp_path):
    import json

    from test_mos_analysis_sim import simulate_mushra_session

    dirs = _systems(tmp_path / "in", n_items=10)
    options = packet_module.PacketOptions(method="mushra", reference=f"natural={dirs['natural']}",
                                          votes=8, seed=2, anchors=["lp3500", "lp7000"])
    packet_module.build_packet([f"{n}={dirs[n]}" for n in ("lowpass", "noisy", "mulaw")],
                               tmp_path / "pk", options)
    sim = load_sim_packet(tmp_path / "pk")
    true = {"natural": 100, "lowpass": 70, "noisy": 55, "mulaw": 40, "lp7000": 60, "lp3500": 25}
    rng = np.random.default_rng(0)
    paths = []
    for k, list_id in enumerate(sim.lists):
        doc = simulate_mushra_session(sim, list_id, f"m{k:02d}", rng, true_scores=true,
                                      behaviour="lazy_ref" if k == 0 else "good")
        paths.append(tmp_path / f"{list_id}.json")
        paths[-1].write_text(json.dumps(doc))
    import_ratings(paths, tmp_path / "pk", tmp_path / "ratings.csv")
    result = run_analysis(tmp_path / "ratings.csv", tmp_path / "pk", tmp_path / "report",
                          AnalysisOptions(n_boot=200, plots=False))
    assert list(result.system_scores["condition"]) == sorted(true, key=true.get, reverse=True)
    sessions = result.screening.sessions
    assert sessions.loc[sessions["excluded"], "rater_id"].tolist() == ["m00"]
    assert "hidden_reference" in sessions["exclusion_reasons"].iloc[0]
    raters = pd.read_csv(tmp_path / "report" / "per_rater.csv").set_index("rater_id")
    assert raters.loc["m00", "hidden_ref_fail_rate"] == 1.0
    assert raters.drop("m00")["hidden_ref_fail_rate"].max() <= 0.15
    assert "d5" in result.system_scores.columns  # deciles on the 0-100 scale
