"""Training runs in `wavebench report`: the validation log as a table and a curve against time."""
import json

import pandas as pd
import pytest

from reports import plot_training_curve
from wavebench.report import build_report
from wavebench_base.errors import InputError

LOG = [{"event": "validation", "step": 0, "val_bits": 8.0, "lr": 1e-4, "seconds": 0.5},
       {"event": "validation", "step": 50, "val_bits": 5.25, "lr": 3e-3, "seconds": 20.0},
       {"event": "validation", "step": 100, "val_bits": 4.5, "lr": 1e-3, "seconds": 41.5}]


def write_log(folder, records=LOG, extra=""):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + extra)
    return folder


def test_a_training_run_gives_its_curve_table_and_plot(tmp_path):
    result = build_report([write_log(tmp_path / "train")], tmp_path / "report",
                          preface="A tiny model: read the numbers as a smoke test.")
    assert [r.kind for r in result.runs] == ["train"]
    written = pd.read_csv(result.files["training.csv"])
    assert written.to_dict("records") == [
        {"run": "train", **{k: r[k] for k in ("step", "seconds", "val_bits", "lr")}} for r in LOG]
    page = result.files["report.html"].read_text()
    assert "<h2>Training</h2>" in page and "training wall time" in page
    assert page.count("data:image/png;base64,") == 1  # the curve, and no other figure
    assert "Reading these numbers" in page and "a smoke test" in page
    markdown = result.files["report.md"].read_text()
    assert "## Training" in markdown and "|   41.50 |    4.500 |" in markdown
    assert markdown.index("## Reading these numbers") < markdown.index("## Training")
    assert json.loads(result.files["report.json"].read_text())["training"][2]["val_bits"] == 4.5


def test_the_curve_has_a_point_per_validation():
    table = pd.DataFrame([{"run": "a", **r} for r in LOG] + [{"run": "b", **r} for r in LOG[:2]])
    png = plot_training_curve(table)
    assert png.startswith(b"\x89PNG")
    with pytest.raises(InputError, match="missing column"):
        plot_training_curve(table.drop(columns="seconds"))
    with pytest.raises(InputError, match="no validation with a time"):
        plot_training_curve(table.assign(seconds=float("nan")))


def test_a_log_without_times_is_a_table_and_a_note(tmp_path):
    old = [{k: v for k, v in r.items() if k != "seconds"} for r in LOG]
    result = build_report([write_log(tmp_path / "train", old)], tmp_path / "report")
    assert result.training["seconds"].isna().all()
    assert any("no training curve" in note for note in result.notes)


def test_only_validation_events_count_and_bad_logs_are_one_line(tmp_path):
    mixed = [{"event": "checkpoint", "step": 50}, *LOG]
    result = build_report([write_log(tmp_path / "mixed", mixed)], tmp_path / "r1")
    assert list(result.training["step"]) == [0, 50, 100]
    with pytest.raises(InputError, match=r"log.jsonl: line 4 is not JSON"):
        build_report([write_log(tmp_path / "cut", extra='{"event": "valid')], tmp_path / "r2")
    with pytest.raises(InputError, match="no validation in log.jsonl yet"):
        build_report([write_log(tmp_path / "empty", [])], tmp_path / "r3")
    with pytest.raises(InputError, match="needs score runs; none was given"):
        build_report([write_log(tmp_path / "train")], tmp_path / "r4", baseline="a")
