"""`wavebench demo` end to end: the README's main command, on the embedded default only."""
import importlib.util

import pandas as pd
import pytest

from wavebench.cli import main


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path, capsys):
    code = main(["demo", "-o", str(tmp_path), "--steps", "30", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "byte-identical" in err  # the two samplers agreed exactly (float64)
    assert (tmp_path / "report" / "report.html").stat().st_size > 10_000
    summary = pd.read_csv(tmp_path / "report" / "summary.csv")
    assert {"tiny_fused", "tiny_cached", "oracle_mulaw"} <= set(summary["system"])
    assert {"mcd", "mel_l1", "stoi", "estoi", "nll_bits"} <= set(summary["metric"])
    if importlib.util.find_spec("speechmos") and importlib.util.find_spec("onnxruntime"):
        assert {"dnsmos_ovrl", "dnsmos_p808"} <= set(summary["metric"])  # wavebench[dnsmos]
    paper = (tmp_path / "report" / "paper.md").read_text()
    assert "| tiny_fused" in paper and "MCD (dB) ↓" in paper
    means = summary.set_index(["system", "metric"])["mean"]
    # a model trained for seconds is far from the mu-law floor
    assert means[("oracle_mulaw", "mcd")] < means[("tiny_fused", "mcd")]
    speed = pd.read_csv(tmp_path / "speed" / "speed.csv")
    assert set(speed["sampler"]) == {"naive", "cached", "fused"}
    assert "open " in out and "report.html" in out
    assert (tmp_path / "mos" / "packet" / "index.html").exists()
    assert "listening test: open" in out
