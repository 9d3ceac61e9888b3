"""docs/import-graph.md is current, the import graph has no cycle, and no arrow goes up a layer."""
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("grimp")  # installed with import-linter (the test extra)

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "import_graph.py"


@pytest.fixture(scope="module")
def import_graph():
    spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_drawing_is_current_and_acyclic(import_graph, capsys):
    code = import_graph.main(["--check"])
    assert code == 0, capsys.readouterr().err


def test_cycles_are_found(import_graph):
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e2"}, "e2": set()}
    assert import_graph.cycles(edges) == [["a", "b", "c"]]
    assert import_graph.cycles({"a": {"b"}, "b": set()}) == []


def test_upward_arrows_are_found(import_graph):
    edges = {"metrics.mel": {"wavebench_base.audio"}, "wavebench_base.errors": {"metrics.mel"}}
    assert import_graph.upward(edges) == [("wavebench_base", "metrics")]
    assert import_graph.group_of("wavebench.mos.packet.build") == "wavebench.mos.packet"
    assert import_graph.group_of("wavebench.__main__") == "wavebench.cli"
