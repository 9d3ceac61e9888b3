"""Issue 17, items 4, 5 and 7: packets are swapped in whole and never lost, `mos import` writes
over none of its inputs, and `mos validate` refuses malformed or escaping manifests and keys."""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_mos_analysis_sim import build_packet as build_sim_packet
from test_mos_analysis_sim import simulate_study
from test_mos_packet import make_systems

from wavebench.cli import main as wavebench_main
from wavebench.mos.packet import build as packet_module
from wavebench.mos.packet.build import PacketOptions, build_packet
from wavebench.mos.packet.validate import validate_packet
from wavebench_base.errors import InputError
from wavebench_base.files import locked


def _systems(root: Path) -> list:
    return [f"secret_sys={root / 'secret_sys'}", f"sysb={root / 'sysb'}"]


def _options(root: Path, seed: int = 1) -> PacketOptions:
    return PacketOptions(reference=f"natural={root / 'natural_dir'}", votes=2, seed=seed)


def _tree(folder: Path) -> dict:
    """Relative path -> sha256 of every file under ``folder``: equal trees, equal packets."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _siblings(out: Path, marker: str) -> list:
    return sorted(p for p in out.parent.iterdir() if p.name.startswith(marker))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_systems(tmp_path_factory.mktemp("hardening_in"), n_items=8)


@pytest.fixture(scope="module")
def built(inputs, tmp_path_factory):
    """A complete packet (seed 1) to copy; never modified."""
    out = tmp_path_factory.mktemp("hardening_pk") / "pk"
    build_packet(_systems(inputs), out, _options(inputs))
    return out


@pytest.fixture
def packet_copy(built, tmp_path):
    out = tmp_path / "pk"
    shutil.copytree(built, out)
    return out


def _run(argv, capsys) -> tuple:
    """The real entry point: (exit code, stderr lines)."""
    code = wavebench_main([str(a) for a in argv])
    return code, capsys.readouterr().err.strip().splitlines()


# ---------------------------------------------------------------- item 4: mos packet

def test_packet_with_a_key_is_not_replaced_without_force(inputs, packet_copy):
    before = _tree(packet_copy)
    with pytest.raises(InputError, match="private key.*--force"):
        build_packet(_systems(inputs), packet_copy, _options(inputs, seed=2))
    assert _tree(packet_copy) == before
    assert not _siblings(packet_copy, "pk.replaced-")


def test_force_replaces_and_keeps_the_old_packet_beside_it(inputs, packet_copy, capsys):
    old = _tree(packet_copy)
    code, err = _run(["mos", "packet", *_systems(inputs), "--reference",
                      f"natural={inputs / 'natural_dir'}", "--votes", "2", "--seed", "2",
                      "--out", packet_copy, "--force"], capsys)
    assert code == 0, err
    (backup,) = _siblings(packet_copy, "pk.replaced-")
    assert _tree(backup) == old                       # the old key, manifest and audio, whole
    assert _tree(packet_copy) != old and validate_packet(packet_copy).errors == []
    assert any(str(backup) in line and "private key" in line for line in err)
    assert not _siblings(packet_copy, ".pk.tmp-")


def test_failed_rebuild_leaves_the_old_packet_and_no_backup(inputs, packet_copy, monkeypatch):
    old = _tree(packet_copy)

    def broken_zip(*args, **kwargs):  # fails after packet/ and private/ are written
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(packet_module, "write_zip", broken_zip)
    with pytest.raises(OSError, match="No space"):
        build_packet(_systems(inputs), packet_copy, _options(inputs, seed=2), force=True)
    assert _tree(packet_copy) == old
    assert not _siblings(packet_copy, "pk.replaced-") and not _siblings(packet_copy, ".pk.tmp-")


def test_a_second_run_on_the_same_out_is_refused(inputs, packet_copy):
    old = _tree(packet_copy)
    with locked(packet_copy, "--out"), \
            pytest.raises(InputError, match="in use by another run"):  # the lock a run holds
        build_packet(_systems(inputs), packet_copy, _options(inputs, seed=2), force=True)
    assert _tree(packet_copy) == old


def test_stale_temporary_folders_of_dead_runs_are_cleared(inputs, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".pk.tmp-{dead.pid}-0123abcd"
    (stale / "private").mkdir(parents=True)
    build_packet(_systems(inputs), tmp_path / "pk", _options(inputs))
    assert not stale.exists()


def test_a_folder_that_is_not_a_packet_is_still_refused(inputs, tmp_path):
    (tmp_path / "pk").mkdir()
    (tmp_path / "pk" / "thesis.tex").write_text("years of work")
    with pytest.raises(InputError, match="not an earlier packet"):
        build_packet(_systems(inputs), tmp_path / "pk", _options(inputs), force=True)
    assert (tmp_path / "pk" / "thesis.tex").read_text() == "years of work"


def _packet_argv(inputs: Path, out: Path, seed: int) -> list:
    return ["mos", "packet", *_systems(inputs), "--reference", f"natural={inputs / 'natural_dir'}",
            "--votes", "2", "--seed", str(seed), "--out", str(out), "--force"]


def _start(inputs: Path, out: Path, seed: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "wavebench", *_packet_argv(inputs, out, seed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _own_temporary(proc: subprocess.Popen, out: Path) -> list:
    """The temporary folders of the run ``proc`` (those of killed runs carry other pids)."""
    return _siblings(out, f".{out.name}.tmp-{proc.pid}-")


def _wait_for_build(proc: subprocess.Popen, out: Path) -> float:
    """Block until the run starts writing its temporary folder (or ends); the time it did."""
    while proc.poll() is None and not _own_temporary(proc, out):
        time.sleep(0.005)
    return time.monotonic()


@pytest.mark.slow
def test_sigkill_leaves_the_old_or_the_new_packet_never_a_mix(tmp_path):
    inputs = make_systems(tmp_path / "in", n_items=24)
    out = tmp_path / "pk"
    for seed, folder in ((1, out), (2, tmp_path / "ref2")):  # the two complete packets
        assert wavebench_main(_packet_argv(inputs, folder, seed)) == 0
    trees = {1: _tree(out), 2: _tree(tmp_path / "ref2")}
    keys = {s: t["private/key.json"] for s, t in trees.items()}

    def seed_now() -> int:
        tree = _tree(out)
        assert tree in trees.values(), f"a mix of packets: {sorted(tree)[:5]}..."
        assert validate_packet(out).errors == []     # the key still matches its commitment
        for backup in _siblings(out, "pk.replaced-"):
            assert _tree(backup)["private/key.json"] in keys.values()
        return next(s for s, t in trees.items() if t == tree)

    # One complete run times the write phase, then runs are killed at random moments in it.
    proc = _start(inputs, out, seed=2)
    started = _wait_for_build(proc, out)
    assert proc.wait(timeout=60) == 0, proc.stderr.read().decode()
    write_s = time.monotonic() - started
    assert seed_now() == 2
    rng, killed_mid_write = np.random.default_rng(17), 0
    proc = _start(inputs, out, seed=1)  # killed while it reads and conditions the audio
    time.sleep(float(rng.uniform(0.2, 1.0)))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    seed_now()
    # Then in each fifth of the write phase but the last, round after round until two kills
    # landed mid-write (a busy machine stretches the phases; a fixed count would be flaky).
    trials = 0
    while trials < 4 or (killed_mid_write < 2 and trials < 16):
        lo = (0.05, 0.25, 0.45, 0.65)[trials % 4]
        proc = _start(inputs, out, seed=3 - seed_now())  # always the other packet
        _wait_for_build(proc, out)
        time.sleep(float(rng.uniform(lo, lo + 0.2)) * write_s)
        writing = bool(_own_temporary(proc, out))
        proc.send_signal(signal.SIGKILL)
        killed_mid_write += proc.wait(timeout=60) == -signal.SIGKILL and writing
        seed_now()
        trials += 1
    assert killed_mid_write >= 2, "the kills missed the write phase; make the build slower"
    proc = _start(inputs, out, seed=3 - seed_now())  # a later run completes and clears up
    assert proc.wait(timeout=60) == 0, proc.stderr.read().decode()
    seed_now()
    assert not _siblings(out, ".pk.tmp-"), "a later run left the killed runs' folders"
    kept = {_tree(folder)["private/key.json"] for folder in [out, *_siblings(out, "pk.replaced-")]}
    assert kept == set(keys.values())  # no key was ever lost


# ---------------------------------------------------------------- item 5: mos import -o

@pytest.fixture
def study(tmp_path):
    """A small simulated packet, two results files, and links to them and to the packet."""
    packet = build_sim_packet(tmp_path / "pk", n_items=10, votes=1, write_audio=False)
    paths = simulate_study(packet, tmp_path / "results")[:2]
    (tmp_path / "pklink").symlink_to(tmp_path / "pk")
    (tmp_path / "victim_link.json").symlink_to(paths[0])
    os.link(paths[0], tmp_path / "victim_hardlink.json")
    return tmp_path, paths


def _import(study, capsys, *options):
    root, paths = study
    return _run(["mos", "import", *paths, "--packet", root / "pk", *options], capsys)


def _fingerprint(study) -> dict:
    root, paths = study
    return {p: p.read_bytes() for p in [*paths, root / "pk" / "private" / "key.json",
                                        root / "pk" / "packet" / "manifest.json"]}


@pytest.mark.parametrize("option, target, message", [
    ("--raters", lambda root, paths: paths[1], "is the results file"),
    ("-o", lambda root, paths: root / "pk" / "private" / "key.json", "is inside the packet"),
    ("-o", lambda root, paths: root / "pk" / "packet" / ".." / "ratings.csv",
     "is inside the packet"),
    ("-o", lambda root, paths: root / "pklink" / "private" / "key.json", "is inside the packet"),
    ("--raters", lambda root, paths: root / "pk" / "packet" / "raters.csv",
     "is inside the packet"),
    ("-o", lambda root, paths: root / "victim_link.json", "is the results file"),
    ("-o", lambda root, paths: root / "victim_hardlink.json", "is the results file"),
], ids=["raters-is-input", "o-is-key", "o-in-packet-by-dotdot", "o-through-linked-folder",
        "raters-in-packet", "o-is-link-to-input", "o-is-hard-link-to-input"])
def test_import_refuses_to_write_over_inputs_or_into_the_packet(study, capsys, option, target,
                                                                message):
    root, paths = study
    before = _fingerprint(study)
    (root / "elsewhere").mkdir()
    extra = ["-o", root / "elsewhere" / "ratings.csv"] if option != "-o" else []
    code, err = _import(study, capsys, *extra, option, target(root, paths))
    assert code == 1 and len(err) == 1 and err[0].startswith("error: "), err
    assert f"{option} {message}" in err[0], err[0]
    assert _fingerprint(study) == before
    assert not any((root / "elsewhere").iterdir())  # refused before anything is written


def test_import_writes_beside_its_inputs_but_never_over_them(study, capsys):
    root, paths = study
    before = _fingerprint(study)
    code, err = _import(study, capsys, "-o", paths[0])
    assert code == 1 and "-o is the results file" in err[0], err
    assert _fingerprint(study) == before
    code, err = _import(study, capsys, "-o", root / "results" / "ratings.csv")
    assert code == 0, err
    assert (root / "results" / "raters.csv").is_file()


def test_import_side_outputs_beside_o_are_checked_too(study, capsys):
    root, paths = study
    shutil.copy(paths[0], root / "raters.csv")  # a results file that happens to be so named
    code, err = _run(["mos", "import", root / "raters.csv", "--packet", root / "pk", "-o",
                      root / "ratings.csv"], capsys)
    assert code == 1 and "raters.csv beside -o is the results file" in err[0], err
    assert (root / "raters.csv").read_bytes() == paths[0].read_bytes()


# ---------------------------------------------------------------- item 7: mos validate

def _edit_json(path: Path, edit) -> None:
    doc = json.loads(path.read_text())
    doc = edit(doc)
    path.write_text(json.dumps(doc))


def _recommit(packet: Path) -> None:
    """Make the manifest commit to the (edited) key, as an attacker would."""
    key = hashlib.sha256((packet / "private" / "key.json").read_bytes()).hexdigest()
    _edit_json(packet / "packet" / "manifest.json", lambda m: {**m, "key_commitment": key})


def _set_first(field: str, value):
    def edit(doc):
        first = next(iter(doc[field]))
        doc[field][first] = value
        return doc
    return edit


def _manifest(edit):
    return lambda pk: _edit_json(pk / "packet" / "manifest.json", edit)


def _key(edit=None, text=None):
    def make(pk):
        path = pk / "private" / "key.json"
        if text is not None:
            path.write_text(text)
        else:
            _edit_json(path, edit)
        _recommit(pk)
    return make


def _outside_entry(rel: str):
    """A manifest ``files`` entry with the right hash of a file outside the packet."""
    def make(pk):
        secret = pk.parent / "secret.txt"
        secret.write_text("root:x:0:0\n")
        digest = hashlib.sha256(secret.read_bytes()).hexdigest()
        name = rel.replace("SECRET", str(secret)).replace("DOTS", "../../secret.txt")
        _edit_json(pk / "packet" / "manifest.json",
                   lambda m: {**m, "files": {**m["files"], name: digest}})
    return make


def _linked_entry(pk):
    """A listed file that is a link to a file outside the packet (hash matching)."""
    secret = pk.parent / "secret.txt"
    secret.write_text("root:x:0:0\n")
    (pk / "packet" / "stimuli" / "zz.wav").symlink_to(secret)
    digest = hashlib.sha256(secret.read_bytes()).hexdigest()
    _edit_json(pk / "packet" / "manifest.json",
               lambda m: {**m, "files": {**m["files"], "stimuli/zz.wav": digest}})


@pytest.mark.parametrize("damage, where, field", [
    (lambda pk: (pk / "packet" / "manifest.json").write_text("[1, 2]"), "manifest.json",
     "JSON object"),
    (_manifest(lambda m: {**m, "files": ["index.html"]}), "manifest.json", "files"),
    (_manifest(lambda m: {**m, "sample_rate": "16000"}), "manifest.json", "sample_rate"),
    (_manifest(_set_first("lists", "L01")), "manifest.json", "lists["),
    (_manifest(_set_first("lists", ["t1"])), "manifest.json", "lists["),
    (_manifest(_set_first("lists", [{"kind": "rating", "stimuli": "abc"}])), "manifest.json",
     "stimuli"),
    (_manifest(lambda m: {k: v for k, v in m.items() if k != "key_commitment"}),
     "manifest.json", "key_commitment"),
    (_manifest(lambda m: {**m, "audio": {"a": 7}}), "manifest.json", "audio['a']"),
    (_key(text="\x00garbage{"), "key.json", "not valid JSON"),
    (_key(text='"a string"'), "key.json", "JSON object"),
    (_key(lambda k: {**k, "trials": ["t1"]}), "key.json", "trials"),
    (_key(_set_first("trials", "rating")), "key.json", "trials["),
    (_key(_set_first("stimuli", {"system": 3})), "key.json", "stimuli["),
    (_key(lambda k: {**k, "votes": True}), "key.json", "votes"),
    (_key(lambda k: {**k, "conditions": [None]}), "key.json", "conditions[0]"),
    (lambda pk: (pk / "private" / "key.json").unlink(), "key.json", "no packet key"),
    (lambda pk: (pk / "packet" / "manifest.json").write_text("[" * 200_000), "manifest.json",
     "nested"),
    (_outside_entry("DOTS"), "manifest.json", "../../secret.txt"),
    (_outside_entry("../../../../../../../../etc/passwd"), "manifest.json", "etc/passwd"),
    (_outside_entry("SECRET"), "manifest.json", "secret.txt"),
    (_linked_entry, "manifest.json", "stimuli/zz.wav"),
    (_key(_set_first("stimuli", {"system": "s", "item": "i", "role": "system", "source": "x",
                                 "file": "stimuli/../../../secret.txt"})),
     "key.json", "stimuli/../../../secret.txt"),
], ids=["manifest-list", "files-list", "rate-string", "list-string", "trial-string",
        "stimuli-string", "no-commitment", "audio-int", "key-garbage", "key-string",
        "key-trials-list", "key-trial-string", "key-stimulus-field", "votes-bool",
        "condition-null", "key-missing", "manifest-deep", "manifest-dotdot", "manifest-etc-passwd",
        "manifest-absolute", "manifest-link-out", "key-file-dotdot"])
def test_validate_refuses_malformed_or_escaping_packets_in_one_line(packet_copy, capsys, damage,
                                                                    where, field):
    damage(packet_copy)
    code, err = _run(["mos", "validate", packet_copy], capsys)
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith("error: ") and where in err[0] and field in err[0], err[0]


def test_validate_reports_an_unlisted_link_out_of_the_packet_without_reading_it(packet_copy):
    secret = packet_copy.parent / "secret.txt"
    secret.write_text("secret_sys")  # a leak check reading it would report a leaked name
    (packet_copy / "packet" / "notes.txt").symlink_to(secret)
    errors = validate_packet(packet_copy).errors
    assert errors == ["notes.txt: a link to a file outside the packet"]
