"""mos packet / validate: design balance, determinism, blinding, levels and bad input."""
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from wavebench.commands.mos import mos_group
from wavebench.mos.packet import design as dz
from wavebench.mos.packet.build import PacketOptions, build_packet
from wavebench.mos.packet.levels import active_speech_level
from wavebench.mos.packet.validate import validate_packet
from wavebench_base.errors import InputError

FS = 16000


def _clip(k: int, rng) -> np.ndarray:
    t = np.arange(int(0.6 * FS)) / FS
    voice = 0.2 * np.sin(2 * np.pi * (150 + 10 * k) * t * (1 + 0.3 * t))
    return voice * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(len(t))


def make_systems(root: Path, n_items: int = 12, names=("natural_dir", "secret_sys", "sysb")):
    """Folders of small synthetic 'systems': the clip, a smoothed copy and a noisier copy."""
    rng = np.random.default_rng(0)
    for k in range(n_items):
        x = _clip(k, rng)
        versions = [x, np.convolve(x, [0.5, 0.5], mode="same"),
                    x + 0.02 * rng.standard_normal(len(x))]
        for name, y in zip(names, versions):
            path = root / name / f"utt{k:02d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, y, FS)
    return root


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_systems(tmp_path_factory.mktemp("mos_in"))


def _systems(root):
    return [f"secret_sys={root / 'secret_sys'}", f"sysb={root / 'sysb'}"]


def _build(root, out, **kw):
    opt = PacketOptions(reference=f"natural={root / 'natural_dir'}", votes=2, **kw)
    return build_packet(_systems(root), out, opt)


@pytest.fixture(scope="module")
def acr_packet(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("acr") / "out"
    _build(inputs, out, anchors=["mnru10"], exports=["trials"])  # leak and validate tests see it
    return out


def test_latin_square_properties_40_items_5_conditions():
    rng = np.random.default_rng(0)
    items = [f"i{k}" for k in range(40)]
    conds = list("ABCDE")
    lists = dz.acr_lists(items, conds, votes=8, per_session=20, rng=rng)
    assert len(lists) == 8 * 5 * 40 // 20          # sessions = V C I / B
    cells = Counter((c.item, c.condition) for lst in lists for c in lst)
    assert set(cells.values()) == {8} and len(cells) == 40 * 5
    for lst in lists:
        assert len({c.item for c in lst}) == len(lst) == 20           # no repeated item
        assert set(Counter(c.condition for c in lst).values()) == {4}  # B / C per condition


def test_filler_pads_incomplete_chunk_and_order_rules():
    rng = np.random.default_rng(1)
    lists = dz.acr_lists([f"i{k}" for k in range(13)], list("ABCD"), 1, 8, rng)
    for lst in lists:
        assert len({c.item for c in lst}) == 8
    real = Counter((c.item, c.condition) for lst in lists for c in lst if not c.filler)
    assert set(real.values()) == {1} and len(real) == 13 * 4
    ordered = dz.order_ratings(lists[0], rng)
    assert dz._max_run(ordered) <= 2
    pos = dz.check_positions(20, 3, rng)
    assert min(pos) >= 3 and np.min(np.diff(pos)) > 1


def test_packet_is_balanced_and_validates(acr_packet):
    report = validate_packet(acr_packet)
    assert report.errors == []
    key = json.loads((acr_packet / "private" / "key.json").read_text())
    rating = [t for t in key["trials"].values() if t["trial_type"] == "rating"]
    cells = Counter((t["item"], t["condition"]) for t in rating)
    assert set(cells.values()) == {2}
    assert set(key["conditions"]) == {"secret_sys", "sysb", "natural", "mnru10"}
    holdout = {t["item"] for t in key["trials"].values() if t["trial_type"] != "rating"}
    assert not holdout & {i for i, _ in cells}        # hold-outs are never rated
    types = Counter(t["trial_type"] for t in key["trials"].values())
    n_lists = len({t["list_id"] for t in key["trials"].values()})
    for kind in ("gold_high", "gold_low", "trap", "calibration"):
        assert types[kind] == n_lists
    trap = next(t for t in key["trials"].values() if t["trial_type"] == "trap")
    assert trap["expected"]["choice"] in {"2", "3", "4"}


def test_trials_export_lists_every_trial_as_the_page_shows_it(acr_packet):
    import pandas as pd
    table = pd.read_csv(acr_packet / "packet" / "exports" / "trials.csv", dtype=str,
                        keep_default_na=False)
    key = json.loads((acr_packet / "private" / "key.json").read_text())["trials"]
    assert sorted(table["trial_id"]) == sorted(key)  # every trial once
    for row in table.itertuples():
        truth = key[row.trial_id]
        assert (row.list_id, int(row.position)) == (truth["list_id"], truth["position"])
        assert all((acr_packet / "packet" / f).is_file() for f in row.audio_all.split())
        # gold trials look like any rating, as on the page
        public = {"gold_high": "rating", "gold_low": "rating"}.get(truth["trial_type"],
                                                                    truth["trial_type"])
        assert row.trial_type == public
    rating = table[table["trial_type"] == "rating"].iloc[0]
    assert rating.scale_id == "acr5" and json.loads(rating.labels)["5"] == "Excellent"
    assert table.loc[table["trial_type"] == "trap", "question"].str.contains("beeps").all()


@pytest.mark.parametrize("name, message", [("webmushra", "not built yet"),
                                           ("excel", "unknown export")])
def test_unavailable_exports_are_refused(inputs, tmp_path, name, message):
    with pytest.raises(InputError, match=message):
        _build(inputs, tmp_path / "out", exports=[name])
    assert not (tmp_path / "out").exists()


def test_secret_system_name_appears_nowhere(acr_packet):
    for path in [acr_packet / "packet.zip", *(acr_packet / "packet").rglob("*")]:
        if path.is_file():
            assert b"secret_sys" not in path.read_bytes().lower(), path
            assert "secret_sys" not in path.name
    html = (acr_packet / "packet" / "index.html").read_text()
    assert "expected" not in html and "gold" not in html  # no answers in the page


def test_stimuli_are_level_aligned_at_minus_26_dbov(acr_packet):
    manifest = json.loads((acr_packet / "packet" / "manifest.json").read_text())
    stimuli = [rel for rel in manifest["audio"].values() if rel.startswith("stimuli/")][:10]
    assert stimuli
    for rel in stimuli:
        audio, rate = sf.read(acr_packet / "packet" / rel)
        # 0.2 dB: 16-bit TPDF dither and the P.56 threshold interpolation.
        assert active_speech_level(audio, rate)[0] == pytest.approx(-26.0, abs=0.2)
        assert rate == FS and sf.info(acr_packet / "packet" / rel).subtype == "PCM_16"


def test_same_seed_gives_byte_identical_packet(inputs, acr_packet, tmp_path):
    again = tmp_path / "again"
    _build(inputs, again, anchors=["mnru10"], exports=["trials"])
    assert (again / "packet.zip").read_bytes() == (acr_packet / "packet.zip").read_bytes()
    for p in (acr_packet / "private").iterdir():
        assert (again / "private" / p.name).read_bytes() == p.read_bytes()
    other = tmp_path / "other"
    _build(inputs, other, anchors=["mnru10"], exports=["trials"], seed=2)
    assert (other / "packet.zip").read_bytes() != (acr_packet / "packet.zip").read_bytes()


def test_validate_finds_tampering_and_swapped_key(acr_packet, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(acr_packet, copy)
    wav = sorted((copy / "packet" / "stimuli").iterdir())[0]
    wav.write_bytes(wav.read_bytes()[:-2] + b"\0\1")
    (copy / "packet" / "notes.txt").write_text("from secret_sys folder")
    key = copy / "private" / "key.json"
    key.write_text(key.read_text().replace('"votes": 2', '"votes": 3'))
    errors = " | ".join(validate_packet(copy).errors)
    assert "sha256 differs" in errors
    assert "not in the manifest" in errors
    assert "key_commitment" in errors
    assert "'secret_sys'" in errors
    with pytest.raises(InputError, match="no manifest.json"):
        validate_packet(tmp_path)


def test_mushra_packet(inputs, tmp_path):
    out = tmp_path / "mushra"
    result = build_packet(_systems(inputs), out, PacketOptions(
        method="mushra", reference=f"natural={inputs / 'natural_dir'}", votes=2,
        trials_per_session=4))
    assert validate_packet(out).errors == []
    manifest = json.loads((out / "packet" / "manifest.json").read_text())
    page = [t for t in manifest["lists"]["L01"] if t["kind"] == "rating"][0]
    assert len(page["stimuli"]) == 5 and page["reference"]  # 2 systems, hidden ref, 2 anchors
    assert result.n_lists == 2 * 2                            # 8 items / 4 pages x 2 votes


def test_cli_packet_and_validate(inputs, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    res = runner.invoke(mos_group, ["packet", *_systems(inputs), "--reference",
                                    f"natural={inputs / 'natural_dir'}", "--out", str(out),
                                    "--votes", "1"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(mos_group, ["validate", str(out)])
    assert res.exit_code == 0 and "OK" in res.output


def _bad_case(tmp_path, inputs, problem):
    root = tmp_path / "bad"
    import shutil
    shutil.copytree(inputs, root)
    target = root / "sysb" / "utt03.wav"
    if problem == "mismatch":
        target.unlink()
        (root / "secret_sys" / "utt05.wav").unlink()
    elif problem == "unreadable":
        target.write_bytes(b"RIFF not really a wav file")
    elif problem == "silent":
        sf.write(target, np.zeros(FS), FS)
    elif problem == "clipped":
        x = sf.read(target)[0]
        x[100:110] = 1.0
        sf.write(target, x, FS, subtype="FLOAT")
    elif problem == "nan":
        x = sf.read(target)[0]
        x[50] = np.nan
        sf.write(target, x, FS, subtype="FLOAT")
    elif problem == "short":
        sf.write(target, 0.1 * np.ones(FS // 20), FS)
    return root


@pytest.mark.parametrize("problem, message", [
    ("mismatch", r"secret_sys lacks 1 \(utt05\); sysb lacks 1 \(utt03\)"),
    ("unreadable", r"utt03.wav: cannot read as audio"),
    ("silent", r"utt03.wav: all 16000 samples are zero"),
    ("clipped", r"utt03.wav: clipped: 10 consecutive"),
    ("nan", r"utt03.wav: 1 NaN"),
    ("short", r"utt03.wav: too short: 0.050 s"),
])
def test_bad_input_is_one_clear_line(tmp_path, inputs, problem, message):
    root = _bad_case(tmp_path, inputs, problem)
    with pytest.raises(InputError, match=message) as info:
        _build(root, tmp_path / "out")
    assert "\n" not in str(info.value)


def test_too_many_mushra_conditions(tmp_path):
    names = ["natural_dir"] + [f"system{k:02d}" for k in range(10)]
    root = tmp_path / "many"
    for name in names:
        make_systems(root, n_items=6, names=(name,))
    systems = [f"{n}={root / n}" for n in names[1:]]
    with pytest.raises(InputError, match="13 conditions on a MUSHRA page"):
        build_packet(systems, tmp_path / "o", PacketOptions(
            method="mushra", reference=f"natural={root / 'natural_dir'}"))


def test_option_errors(inputs, tmp_path):
    with pytest.raises(InputError, match="MUSHRA needs the reference"):
        build_packet(_systems(inputs), tmp_path / "o", PacketOptions(method="mushra"))
    with pytest.raises(InputError, match="not built yet"):
        build_packet(_systems(inputs), tmp_path / "o", PacketOptions(method="ab"))
    with pytest.raises(InputError, match="need --reference"):
        build_packet(_systems(inputs), tmp_path / "o", PacketOptions(anchors=["lp3500"]))
    with pytest.raises(InputError, match="systems are given as NAME=DIR"):
        build_packet(["nodir"], tmp_path / "o")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("x")
    with pytest.raises(InputError, match="not an earlier packet"):
        _build(inputs, tmp_path / "busy")
