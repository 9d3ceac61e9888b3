"""`wavebench score --shard I/N`: stable assignment, shards merged by `wavebench report`."""
import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from wavebench.cli import main
from wavebench.report import build_report
from wavebench.score import parse_shard, score, shard_of
from wavebench_base.errors import InputError

RATE = 16000
METRICS = ("mcd", "mel_l1")  # the quick ones
UTTERANCES = [f"u{i}" for i in range(8)]
KEYS = ["system", "utterance", "metric"]


def clip(seed, noise=0.0, seconds=0.4):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    x = 0.3 * np.sin(2 * np.pi * (120 + 15 * seed) * t)
    return (x + 0.01 * rng.standard_normal(len(t)) + noise * rng.standard_normal(len(t))
            ).astype(np.float32)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    ref, gen = root / "ref", root / "gen"
    ref.mkdir()
    gen.mkdir()
    for i, name in enumerate(UTTERANCES):
        sf.write(ref / f"{name}.wav", clip(i), RATE)
        sf.write(gen / f"{name}.wav", clip(i, noise=0.05), RATE)
    return root, ref, gen


def run(folders, out, shard=None):
    _, ref, gen = folders
    return score(reference_dir=ref, generated={"sys": gen}, out_dir=out, metrics=METRICS,
                 oracles=("mulaw",), progress=False, log=lambda _: None, shard=shard)


@pytest.fixture(scope="module")
def scored(folders):
    root = folders[0]
    whole = run(folders, root / "whole")
    shards = [run(folders, root / f"part{i}", shard=(i, 3)) for i in (1, 2, 3)]
    return root, whole, shards


def rows(table):
    return (table[KEYS + ["value", "status"]].sort_values(KEYS).reset_index(drop=True))


def test_shard_of_is_sha256_of_the_utterance_key_mod_n():
    # worked by hand from the definition: the first 8 bytes of sha256, big-endian, mod N, + 1
    for key in ("u0", "spk/c", "a/b/c"):
        expected = int(hashlib.sha256(key.encode()).hexdigest()[:16], 16) % 5 + 1
        assert shard_of(key, 5) == expected
    assert {shard_of(f"u{i}", 1) for i in range(20)} == {1}


def test_shards_are_disjoint_cover_everything_and_record_one_job(scored):
    root, whole, shards = scored
    parts = [pd.read_csv(s.per_utterance) for s in shards]
    # all of an utterance's pairs (both systems) are in one shard; here shard 3 gets none of
    # the 8 utterances, which the merge test below must cope with
    owner = {u: i for i, p in enumerate(parts) for u in p["utterance"]}
    assert all(set(p["utterance"]) == {u for u, i in owner.items() if i == k}
               for k, p in enumerate(parts))
    assert [len(p) for p in parts].count(0) == 1
    stacked = pd.concat(parts)
    assert not stacked.duplicated(KEYS).any()
    assert len(stacked) == len(pd.read_csv(whole.per_utterance)) == 2 * 8 * 2
    infos = [json.loads((root / f"part{i}" / "run.json").read_text()) for i in (1, 2, 3)]
    assert [(i["shard"]["index"], i["shard"]["count"]) for i in infos] == [(1, 3), (2, 3), (3, 3)]
    assert len({i["shard"]["job"] for i in infos}) == 1
    assert "shard" not in json.loads((root / "whole" / "run.json").read_text())
    assert all(i["settings"] == infos[0]["settings"] for i in infos)


def test_merged_shards_equal_the_unsharded_run(scored, tmp_path):
    root, whole, _ = scored
    result = build_report([root / f"part{i}" for i in (1, 2, 3)], tmp_path / "report")
    expected = rows(pd.read_csv(whole.per_utterance))
    # the same computation on the same files: the values match exactly
    pd.testing.assert_frame_equal(rows(result.results), expected, check_exact=True)
    assert result.missing_shards == []
    assert "incomplete" not in result.describe()
    assert set(result.results["system"]) == {"sys", "oracle_mulaw"}  # names kept, not run/sys


def test_a_missing_shard_is_noted_and_printed(scored, tmp_path):
    root, _, _ = scored
    result = build_report([root / "part1", root / "part3"], tmp_path / "report")
    assert result.missing_shards == ["2/3"]
    assert any("shards 2/3 missing" in n for n in result.notes)
    assert "incomplete: shards 2/3 missing" in result.describe()
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert any("shards 2/3 missing" in n for n in report["notes"])


def test_the_same_shard_twice_is_refused_naming_both_runs(scored, tmp_path):
    root, _, _ = scored
    copy = tmp_path / "copy_of_part2"
    shutil.copytree(root / "part2", copy)
    with pytest.raises(InputError, match=r"runs .*part2 and .*copy_of_part2 overlap as "
                                               r"shards of one job \(shard 2 and 2; \d+ shared"):
        build_report([root / "part1", root / "part2", copy], tmp_path / "report")


def test_shards_split_differently_are_refused(scored, folders, tmp_path):
    root, _, _ = scored
    other = run(folders, tmp_path / "half1", shard=(1, 2))
    with pytest.raises(InputError, match=r"shards of one job split 3 and 2 ways"):
        build_report([root / "part1", other.out_dir], tmp_path / "report")


def test_resuming_a_folder_with_another_shard_is_refused(scored, folders):
    root, _, _ = scored
    with pytest.raises(InputError, match=r"part1: holds a score run of another job; the inputs "
                                         r"changed: shard\.index: 1 -> 2\."):
        run(folders, root / "part1", shard=(2, 3))


def test_an_empty_shard_writes_empty_tables(folders, tmp_path):
    # 8 utterances over 40 shards: some shard gets none; it must still finish
    empty = next(i for i in range(1, 41) if all(shard_of(u, 40) != i for u in UTTERANCES))
    result = run(folders, tmp_path / "empty", shard=(empty, 40))
    assert result.n_scored == 0


@pytest.mark.parametrize("text", ["0/3", "4/3", "x", "3", "1/0", "a/b", "-1/3"])
def test_bad_shard_is_one_error_line(folders, tmp_path, capsys, text):
    _, ref, gen = folders
    code = main(["score", "--reference", str(ref), "--generated", str(gen), "-o",
                 str(tmp_path / "out"), "--metrics", "mcd", "--no-progress", "--shard", text])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err == [f"error: --shard {text!r}: expected I/N with 1 <= I <= N, such as 2/4"]
    assert not (tmp_path / "out").exists()


def test_parse_shard():
    assert parse_shard("2/4") == (2, 4)
    assert parse_shard(None) is None
    with pytest.raises(InputError, match=r"--shard '5/4': expected I/N"):
        parse_shard("5/4")


def test_cli_shard_runs_one_shard(folders, tmp_path, capsys):
    _, ref, gen = folders
    code = main(["score", "--reference", str(ref), "--generated", f"sys={gen}", "-o",
                 str(tmp_path / "out"), "--metrics", "mcd", "--no-progress", "--shard", "1/2"])
    assert code == 0, capsys.readouterr().err
    table = pd.read_csv(tmp_path / "out" / "per_utterance.csv")
    assert set(table["utterance"]) == {u for u in UTTERANCES if shard_of(u, 2) == 1}


def test_shard_with_checkpoint_is_a_usage_error(folders, tmp_path, capsys):
    _, ref, _ = folders
    code = main(["score", "--reference", str(ref), "--checkpoint", str(tmp_path / "x.pt"),
                 "-o", str(tmp_path / "out"), "--shard", "1/2"])
    assert code == 2
    assert "--shard applies to --generated and --oracle, not --checkpoint" in \
        capsys.readouterr().err
