"""Every bad input the design names, thrown at every command that reads it.

Each case calls ``wavebench.cli.main`` in-process and checks the command-line contract of the
design ("Command line"): exit code 1 for input errors (2 for usage errors), exactly one
stderr line with ``error:``, which is the last line, starts with ``error: `` and names the bad
file or folder, no traceback, no progress bar, and no half-written outputs (no final output
files and no ``*.tmp*`` files under the output folder). Lines a long command logs before it
fails ("data: preparing ...") are allowed. Known bugs are strict xfails whose reason says what
is wrong.
"""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from reference_model.checkpoint import save_checkpoint
from reference_model.config import get_preset
from reference_model.model import WaveNet
from wavebench.cli import main

RATE = 16000


def tone(seconds=0.3, freq=220.0):
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# --- bad audio files: each maker writes one bad file at ``path`` ---------------------------------

def truncated_header(path):
    sf.write(path, tone(), RATE, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:30])  # cut inside the 44-byte RIFF/fmt header


def with_samples(value):
    def write(path):
        x = tone()
        x[100:110] = value
        sf.write(path, x, RATE, subtype="FLOAT")
    return write


BAD_AUDIO_FILES = {
    "zero_bytes.wav": lambda p: p.write_bytes(b""),
    "corrupt.wav": lambda p: p.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(range(256))),
    "corrupt.flac": lambda p: p.write_bytes(b"fLaC" + bytes(range(256)) * 2),
    "text.wav": lambda p: p.write_text("this is a text file, not audio\n" * 20),
    "nan.wav": with_samples(np.nan),
    "inf.wav": with_samples(np.inf),
    "silent.wav": lambda p: sf.write(p, np.zeros(RATE // 2, np.float32), RATE),
    "truncated_header.wav": truncated_header,
}


def bad_file(root: Path, name: str) -> Path:
    path = root / "bad_in" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    BAD_AUDIO_FILES[name](path)
    return path


def bad_folder(root: Path, kind: str) -> Path:
    """A folder of good clips plus one bad file; or a missing or an empty folder."""
    folder = root / "audio_in"
    if kind == "missing":
        return folder
    folder.mkdir(parents=True)
    if kind == "empty":
        return folder
    for i in range(2):
        sf.write(folder / f"good{i}.wav", tone(freq=200 + 60 * i), RATE, subtype="PCM_16")
    BAD_AUDIO_FILES[kind](folder / kind)
    return folder


def good_folder(root: Path, name: str, like: Path | None = None) -> Path:
    """Good clips; with ``like``, one good WAV per audio file of that folder (same stems), so
    that a command pairing the two folders reaches the bad file instead of a set mismatch."""
    folder = root / name
    folder.mkdir(parents=True)
    stems = sorted({p.stem for p in like.iterdir()}) if like and like.is_dir() else []
    stems = stems or ["good0", "good1"]
    for i, stem in enumerate(stems):
        sf.write(folder / f"{stem}.wav", tone(freq=200 + 60 * i), RATE, subtype="PCM_16")
    return folder


# --- bad checkpoints ----------------------------------------------------------------------------

def tiny_model(cond="none"):
    config = get_preset("tiny").model.replace(cond=cond)
    return config, WaveNet(config)


def mel_checkpoint(root: Path) -> Path:
    config, model = tiny_model(cond="mel")
    return save_checkpoint(root / "mel.pt", config=config, model_state=model.state_dict())


def bad_checkpoint(root: Path, kind: str) -> Path:
    path = root / "ckpt" / f"{kind}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "missing":
        return path
    if kind == "wav_file":
        sf.write(path, tone(), RATE, format="WAV")  # a WAV file named .pt
    elif kind == "truncated":
        config, model = tiny_model()
        save_checkpoint(path, config=config, model_state=model.state_dict())
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "bare_state_dict":
        torch.save(tiny_model()[1].state_dict(), path)
    elif kind == "other_format":
        torch.save({"format": "some-other-tool", "version": 1, "weights": torch.zeros(3)}, path)
    elif kind == "newer_version":
        config, model = tiny_model()
        save_checkpoint(path, config=config, model_state=model.state_dict())
        payload = torch.load(path, weights_only=True)
        payload["version"] = 10 ** 6
        torch.save(payload, path)
    elif kind == "text":
        path.write_text("not a checkpoint\n")
    return path


CHECKPOINT_KINDS = ["missing", "wav_file", "truncated", "bare_state_dict", "other_format",
                    "newer_version", "text"]
FOLDER_KINDS = ["missing", "empty", *BAD_AUDIO_FILES]
FILE_KINDS = list(BAD_AUDIO_FILES)


# --- the cases: (id, argv maker, final output globs) ---------------------------------------------
# Each argv maker takes the test's tmp folder and returns the arguments; "-o" is always
# tmp/out so that the no-partial-output check knows where to look.

def case(cid, make, finals, usage=False, bug=None, names="", raises=AssertionError):
    """One sweep case; ``names`` is text the error line must hold (the bad file's name); ``bug``
    marks a known bug (an expected failure raising ``raises``)."""
    marks = [pytest.mark.xfail(strict=True, raises=raises, reason=bug)] if bug else []
    return pytest.param(make, finals, usage, names, id=cid, marks=marks)


def folder_name(kind: str) -> str:
    return "audio_in" if kind in ("missing", "empty") else kind


def prepare_case(kind):
    return case(f"prepare-{kind}", lambda r: ["prepare", bad_folder(r, kind), "-o", r / "out"],
                ["*.npy", "*.json", "*.csv", "*.wav"], names=folder_name(kind))



def train_case(kind):
    return case(f"train-{kind}", lambda r: ["train", "--data", bad_folder(r, kind), "--preset",
                                            "tiny", "--steps", "2", "--no-progress", "-o",
                                            r / "out"], ["*.pt", "*.csv", "*.json"],
                names=folder_name(kind))


def score_ref_case(kind):
    return case(f"score-reference-{kind}",
                lambda r: ["score", "--reference", bad_folder(r, kind), "--generated",
                           f"a={good_folder(r, 'gen', like=r / 'audio_in')}", "--metrics",
                           "mel_l1", "--no-progress", "-o", r / "out"],
                ["per_utterance.csv", "summary.csv"], names=folder_name(kind))


def model_args(root: Path, option: str) -> list:
    """--mel-from needs a mel-conditioned model; --prime works with random tiny weights."""
    if option == "--mel-from":
        return ["--checkpoint", mel_checkpoint(root)]
    return ["--preset", "tiny"]


def generate_file_case(option, kind):
    return case(f"generate{option}-{kind}",
                lambda r: ["generate", *model_args(r, option), option, bad_file(r, kind),
                           "--seconds", "0.01", "--no-progress", "-o", r / "out"], ["*.wav"],
                names=kind)


def generate_missing_file_case(option):
    return case(f"generate{option}-missing",
                lambda r: ["generate", *model_args(r, option), option, r / "nope.wav",
                           "--seconds", "0.01", "--no-progress", "-o", r / "out"], ["*.wav"],
                names="nope.wav")


def generate_ckpt_case(kind):
    return case(f"generate-checkpoint-{kind}",
                lambda r: ["generate", "--checkpoint", bad_checkpoint(r, kind), "--seconds",
                           "0.01", "--no-progress", "-o", r / "out"], ["*.wav"],
                names=f"{kind}.pt")


def score_ckpt_case(kind):
    return case(f"score-checkpoint-{kind}",
                lambda r: ["score", "--checkpoint", bad_checkpoint(r, kind), "--reference",
                           good_folder(r, "ref"), "--no-progress", "-o", r / "out"],
                ["per_utterance.csv", "summary.csv"], names=f"{kind}.pt")


def train_resume_case(kind):
    return case(f"train-resume-{kind}",
                lambda r: ["train", "--preset", "tiny", "--steps", "2", "--no-progress",
                           "--resume", bad_checkpoint(r, kind), "-o", r / "out"],
                ["*.pt", "*.csv", "*.json"], names=f"{kind}.pt")


def train_resume_preset_case():
    def make(r):
        config, model = tiny_model()
        path = save_checkpoint(r / "ckpt" / "small.pt", config=config,
                               model_state=model.state_dict())
        return ["train", "--preset", "reference", "--steps", "2", "--no-progress", "--resume",
                path, "-o", r / "out"]
    return case("train-resume-other-preset", make, ["*.pt", "*.csv", "*.json"], names="small.pt")


def mos_packet_case(kind):
    def make(r):
        like = r / "audio_in" if kind not in ("missing", "empty") else None
        return ["mos", "packet", f"a={bad_folder(r, kind)}", f"b={good_folder(r, 'b', like)}",
                "--out", r / "out", "--votes", "1", "--holdout", "0"]
    return case(f"mos-packet-{kind}", make, ["packet.zip", "*.json", "*.html", "*.wav"],
                names=folder_name(kind))


REPORT_FINALS = ["report.*", "*.csv", "*.parquet"]


def truncated_score_run(r):
    run = r / "run"
    run.mkdir()
    (run / "per_utterance.csv").write_text(
        "system,utterance,metric,value,status\na,u0,mel_l1,0.5,ok\na,u1,mel")
    return run


def huge_flac(root: Path) -> Path:
    """A valid FLAC whose header claims 2**36 - 1 samples (the 36-bit field all ones)."""
    folder = bad_folder(root, "empty")
    for i in range(2):
        sf.write(folder / f"good{i}.wav", tone(freq=200 + 60 * i), RATE, subtype="PCM_16")
    sf.write(folder / "huge.flac", tone(), RATE, subtype="PCM_16")
    data = bytearray((folder / "huge.flac").read_bytes())
    data[21] |= 0x0F  # STREAMINFO total samples: low 4 bits of byte 21, then bytes 22-25
    data[22:26] = b"\xff" * 4
    (folder / "huge.flac").write_bytes(bytes(data))
    return folder



def run_folder_cases():
    return [
        case("report-missing-run", lambda r: ["report", r / "nope", "-o", r / "out"],
             REPORT_FINALS),
        case("report-not-a-run", lambda r: ["report", good_folder(r, "x"), "-o", r / "out"],
             REPORT_FINALS),
        case("report-truncated-csv", lambda r: ["report", truncated_score_run(r), "-o", r / "out"],
             REPORT_FINALS),
        case("mos-validate-not-a-packet", lambda r: ["mos", "validate", good_folder(r, "x")], []),
        case("mos-validate-missing", lambda r: ["mos", "validate", r / "nope"], []),
        case("mos-import-not-a-packet",
             lambda r: ["mos", "import", bad_file(r, "text.wav"), "--packet", good_folder(r, "x"),
                        "-o", r / "out" / "ratings.csv"], ["ratings.csv", "raters.csv"]),
        case("mos-analyze-not-a-packet",
             lambda r: ["mos", "analyze", truncated_score_run(r) / "per_utterance.csv",
                        "--packet", good_folder(r, "x"), "--no-plots", "-o", r / "out"],
             ["report.*", "*.csv"]),
    ]


# --- listening-test packets, results and ratings -------------------------------------------------

def packet(root: Path) -> Path:
    """A small valid ACR packet (4 items, 2 systems) built by the command itself."""
    systems = [f"{name}={good_folder(root, name, like=None if i == 0 else root / 'a')}"
               for i, name in enumerate(["a", "b"])]
    for i in range(2, 4):  # four items: a, then b with the same stems
        for name in ("a", "b"):
            sf.write(root / name / f"good{i}.wav", tone(freq=300 + 40 * i), RATE)
    code = main([*map(str, ["mos", "packet", *systems, "--out", root / "packet", "--votes", "1",
                            "--holdout", "0"])])
    assert code == 0, "the valid packet could not be built"
    return root / "packet"


def damaged_stimulus(write):
    def make(root):
        folder = packet(root)
        write(sorted((folder / "packet" / "stimuli").iterdir())[0])
        return ["mos", "validate", folder]
    return make



def results_file(text):
    def make(root):
        folder = packet(root)
        path = root / "results.json"
        if text is not None:
            path.write_text(text)
        return ["mos", "import", path, "--packet", folder, "-o", root / "out" / "ratings.csv"]
    return make


def ratings_file(text):
    def make(root):
        folder = packet(root)
        path = root / "ratings.csv"
        if text is not None:
            path.write_text(text)
        return ["mos", "analyze", path, "--packet", folder, "--no-plots", "-o", root / "out"]
    return make


def mos_cases():
    ratings, imports = ["ratings.csv", "raters.csv"], ["report.*", "*.csv", "*.json", "*.png"]
    return [
        case("mos-validate-empty-stimulus", damaged_stimulus(lambda p: p.write_bytes(b"")), [],
             names="stimuli"),
        case("mos-validate-truncated-stimulus",
             damaged_stimulus(lambda p: p.write_bytes(p.read_bytes()[:30])), [],
             names="stimuli"),
        case("mos-validate-corrupt-manifest",
             damaged_stimulus(lambda p: p.parents[1].joinpath("manifest.json").write_text("{")),
             [], names="manifest.json"),
        *[case(f"mos-import-{cid}", results_file(text), ratings, names="results.json")
          for cid, text in [("missing", None), ("empty", ""), ("text", "hello"),
                            ("truncated", '{"packet": "x", "ra'), ("list", "[1, 2]")]],
        *[case(f"mos-analyze-{cid}", ratings_file(text), imports, names="ratings.csv")
          for cid, text in [("missing", None), ("empty", ""),
                            ("truncated", "rater,item,score\nr1,i1,3\nr1,i"),
                            ("wrong-columns", "a,b\n1,2\n")]],
    ]


def usage_cases():
    return [
        case("score-nothing-to-score", lambda r: ["score", "-o", r / "out"], [], usage=True),
        case("generate-bad-sampler", lambda r: ["generate", "--preset", "tiny", "--sampler",
                                                "warp", "-o", r / "out"], ["*.wav"], usage=True),
        case("unknown-command", lambda r: ["transmogrify"], [], usage=True),
    ]


CASES = [
    *[prepare_case(k) for k in FOLDER_KINDS],
    *[train_case(k) for k in FOLDER_KINDS],
    # NaN, Inf and silent references are scored as failed utterances (NaN values with a status
    # and a warning), by design, so they are no input error for `score`.
    *[score_ref_case(k) for k in FOLDER_KINDS if k not in ("nan.wav", "inf.wav", "silent.wav")],
    *[generate_file_case(o, k) for o in ("--prime", "--mel-from") for k in FILE_KINDS],
    *[generate_missing_file_case(o) for o in ("--prime", "--mel-from")],
    *[generate_ckpt_case(k) for k in CHECKPOINT_KINDS],
    *[score_ckpt_case(k) for k in CHECKPOINT_KINDS],
    *[train_resume_case(k) for k in CHECKPOINT_KINDS],
    train_resume_preset_case(),
    *[mos_packet_case(k) for k in FOLDER_KINDS],
    case("prepare-huge_length.flac", lambda r: ["prepare", huge_flac(r), "-o", r / "out"],
         ["*.npy", "*.json", "*.csv", "*.wav"], names="huge.flac"),
    *run_folder_cases(),
    *mos_cases(),
    *usage_cases(),
]


def leftovers(out: Path, finals) -> list:
    """Final-looking or temporary files under ``out`` (none may exist after a failure)."""
    if not out.exists():
        return []
    found = [p for pattern in ["*.tmp*", *finals] for p in out.rglob(pattern) if p.is_file()]
    return sorted(str(p.relative_to(out)) for p in found)


@pytest.mark.parametrize("make, finals, usage, names", CASES)
def test_bad_input_gives_one_error_line_and_no_output(tmp_path, capsys, monkeypatch, make,
                                                      finals, usage, names):
    monkeypatch.chdir(tmp_path)  # commands with a default -o write nothing outside tmp_path
    argv = [str(a) for a in make(tmp_path)]
    capsys.readouterr()  # drop what building the inputs printed (a valid packet, say)
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out
    if usage:
        assert code == 2, err
        assert "error" in err.lower(), err  # click's usage text ends with its "Error:" line
    else:
        assert code == 1, err
        # Long commands may log what they start ("data: preparing ...") before failing; the
        # failure itself is one line, the last, and no progress bar is drawn off a terminal.
        lines = [line for line in err.splitlines() if line.strip()]
        assert [line for line in lines if "error:" in line.lower()] == lines[-1:], err
        assert lines[-1].startswith("error: ") and "%|" not in err, err
        assert names in lines[-1], err  # the line names the bad file (or folder)
    assert leftovers(tmp_path / "out", finals) == []
