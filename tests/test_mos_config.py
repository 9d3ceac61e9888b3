"""`mos packet --config mos.yaml`: the file's settings, command-line precedence, refusals, and
the study block reaching the analysis report's checklist."""
import json

import pytest
from click.testing import CliRunner
from test_mos_analysis_sim import import_ratings, load_sim_packet, simulate_study
from test_mos_packet import make_systems

from wavebench.commands.mos import mos_group
from wavebench.mos.analysis.report import AnalysisOptions, run_analysis

CONFIG = """
method: acr
question: "How natural does this speech sound?"
scale: {id: acr5, labels: {5: Excellent, 4: Good, 3: Fair, 2: Poor, 1: Bad}, step: 1}
design: {votes: 3, trials_per_session: auto, sessions_per_rater: 1, holdout_items: 4, seed: 7}
audio: {sample_rate: auto, bit_depth: 16, level: "p56:-26", true_peak_max_dbtp: -1.0}
anchors: [mnru10]
checks: {headphone: woods, gold: auto, traps: tones, repeat: 0, training: 3, bandwidth: false}
session: {break_after_min: 15, max_min: 40}
exports: [trials]
study:
  platform: Prolific
  recruitment: "UK/US, English first language"
  payment_per_hour: "GBP 9.00"
  environment: "own device, headphones required"
"""


@pytest.fixture(scope="module")
def systems(tmp_path_factory):
    return make_systems(tmp_path_factory.mktemp("cfg_in"))


def packet(systems, out, config_text, *extra):
    config = out.parent / f"{out.name}.yaml"
    config.write_text(config_text)
    return CliRunner().invoke(mos_group, [
        "packet", f"secret_sys={systems / 'secret_sys'}", f"sysb={systems / 'sysb'}",
        "--reference", f"natural={systems / 'natural_dir'}", "--out", str(out),
        "--config", str(config), *extra])


def test_config_settings_apply_and_the_command_line_wins(systems, tmp_path):
    out = tmp_path / "pk"
    result = packet(systems, out, CONFIG, "--votes", "2")
    assert result.exit_code == 0, result.output
    resolved = json.loads((out / "private" / "config.resolved.yaml").read_text())
    assert resolved["votes"] == 2  # the command line's, not the file's 3
    assert (resolved["seed"], resolved["headphone_check"], resolved["anchors"]) == \
        (7, "woods", ["mnru10"])
    assert (resolved["break_after_min"], resolved["exports"]) == (15, ["trials"])
    assert (out / "packet" / "exports" / "trials.csv").is_file()
    key = json.loads((out / "private" / "key.json").read_text())
    assert key["votes"] == 2 and "mnru10" in key["conditions"]

    # the study block reaches the analysis report's checklist
    paths = simulate_study(load_sim_packet(out), tmp_path / "results")
    import_ratings(paths, out, tmp_path / "ratings.csv")
    run_analysis(tmp_path / "ratings.csv", out, tmp_path / "report",
                 AnalysisOptions(n_boot=50, plots=False))
    report = (tmp_path / "report" / "report.md").read_text()
    assert "Prolific" in report and "GBP 9.00" in report


@pytest.mark.parametrize("change, message", [
    ("repeat: 0", "checks.repeat (consistency repeats) is not built yet"),
    ("sessions_per_rater: 1", "design.sessions_per_rater other than 1 is not built yet"),
    ("id: acr5", "scale 'dcr5' is not built yet"),
    ("method: acr", "unknown section(s) methd"),
    ("exports: [trials]", "--export webmushra is not built yet"),
    ("votes: 3", "design.votes must be int, got '8'"),
    ("seed: 7", "design: unknown key(s) sead"),
    ("training: 3", "checks.training: the packet builds 3 training trials"),
    ("1: Bad}", "scale.labels: custom labels are not built yet"),
])
def test_settings_it_cannot_honour_are_refused_in_one_line(systems, tmp_path, change, message):
    bad = {"repeat: 0": "repeat: 1", "sessions_per_rater: 1": "sessions_per_rater: 2",
           "id: acr5": "id: dcr5", "method: acr": "methd: acr",
           "exports: [trials]": "exports: [webmushra]", "votes: 3": "votes: '8'",
           "seed: 7": "sead: 7", "training: 3": "training: 5", "1: Bad}": "1: Awful}"}[change]
    out = tmp_path / "pk"
    result = packet(systems, out, CONFIG.replace(change, bad))
    assert result.exit_code != 0 and message in str(result.exception or result.output)
    assert not out.exists()


def test_yaml_no_for_the_headphone_check_means_none():
    from wavebench.mos.packet.config import packet_options_from_config
    assert packet_options_from_config({"checks": {"headphone": False}}, "x.yaml") == \
        {"headphone_check": "none"}
