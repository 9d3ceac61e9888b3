"""Property-based fuzzing of the audio and checkpoint loaders.

Whatever bytes a file holds (random bytes, or a valid WAV, FLAC or checkpoint with bytes
overwritten or cut off), ``load_audio`` and ``load_checkpoint`` either succeed or raise the
package's ``InputError`` with a one-line message that names the file: never another exception
type, which the command line would show as a traceback.
"""
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference_model.checkpoint import load_checkpoint, save_checkpoint
from reference_model.config import get_preset
from reference_model.model import WaveNet
from wavebench_base.audio import MAX_RATE, MIN_RATE, load_audio
from wavebench_base.errors import InputError

RATE = 16000
# Sized so that the module runs in well under 30 s on two cores (checkpoint loads build a model).
AUDIO_EXAMPLES = 1000
CHECKPOINT_EXAMPLES = 300


def fuzz(max_examples: int):
    """No deadline (a checkpoint load builds a model) and no example database in the repo."""
    return settings(max_examples=max_examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


TINY = get_preset("tiny").model
torch.manual_seed(0)
TINY_STATE = WaveNet(TINY).state_dict()
SINE = 0.5 * np.sin(2 * np.pi * 220 * np.arange(RATE // 10) / RATE)  # 0.1 s, 1600 samples


def valid_bytes(suffix: str) -> bytes:
    """A short valid file of the given kind, as bytes."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"valid{suffix}"
        if suffix == ".pt":
            save_checkpoint(path, config=TINY, model_state=TINY_STATE, step=3)
        else:
            sf.write(path, SINE, RATE, subtype="PCM_16")
        return path.read_bytes()


VALID = {suffix: valid_bytes(suffix) for suffix in (".wav", ".flac", ".pt")}


@st.composite
def mutated(draw, suffix: str) -> bytes:
    """A valid file with up to 8 bytes overwritten and, sometimes, its tail cut off."""
    data = bytearray(VALID[suffix])
    for _ in range(draw(st.integers(0, 8))):
        # Half the edits land in the first 64 bytes, where the headers that steer parsing are.
        limit = 64 if draw(st.booleans()) else len(data)
        where = draw(st.integers(0, limit - 1))
        data[where] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def contents(suffix: str):
    return st.one_of(st.binary(max_size=512), mutated(suffix))


def check_audio(clip) -> None:
    """What a successful load_audio promises: checked mono float32 at the file's own rate."""
    assert clip.audio.dtype == np.float32 and clip.audio.ndim == 1 and clip.audio.size >= 1
    assert np.isfinite(clip.audio).all() and np.any(clip.audio)  # NaN/Inf and silence refused
    assert MIN_RATE <= clip.sample_rate <= MAX_RATE and clip.sample_rate == clip.original_rate
    assert clip.channels >= 1 and isinstance(clip.notes, tuple)
    assert all(isinstance(note, str) and "\n" not in note for note in clip.notes)


def check_checkpoint(loaded) -> None:
    """What a successful load_checkpoint promises: the stored weights, all of them, in eval."""
    model, payload = loaded
    assert isinstance(model, WaveNet) and not model.training
    state = payload.get("ema_state") or payload["model"]
    got = model.state_dict()
    assert got.keys() == state.keys()
    # bit-for-bit, NaN included: a mutated byte can turn a stored weight into NaN
    assert all(torch.allclose(got[key], state[key], rtol=0, atol=0, equal_nan=True) for key in got)


CHECKS = {load_audio: check_audio, load_checkpoint: check_checkpoint}


def check_loader(load, suffix: str, data: bytes) -> None:
    """Write ``data`` to a file and load it: a value the loader promises, or a one-line
    InputError naming the file."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzzed{suffix}"
        path.write_bytes(data)
        try:
            loaded = load(path)
        except InputError as exc:
            message = str(exc)
            assert "\n" not in message, message
            assert path.name in message, message
        else:
            CHECKS[load](loaded)


@fuzz(AUDIO_EXAMPLES)
@given(suffix=st.sampled_from([".wav", ".flac"]), data=st.data())
def test_load_audio_succeeds_or_raises_one_line_input_error(suffix, data):
    check_loader(load_audio, suffix, data.draw(contents(suffix)))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # a mutated protocol byte
@fuzz(CHECKPOINT_EXAMPLES)
@given(data=contents(".pt"))
def test_load_checkpoint_succeeds_or_raises_one_line_input_error(data):
    check_loader(load_checkpoint, ".pt", data)


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_unchanged_valid_audio_loads_as_written(suffix):
    """The seeds of the mutations are themselves valid, so mutants start from a loadable file."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"valid{suffix}"
        path.write_bytes(VALID[suffix])
        clip = load_audio(path)
    check_audio(clip)
    assert (clip.sample_rate, clip.original_rate, clip.channels, clip.subtype, clip.notes) == (
        RATE, RATE, 1, "PCM_16", ())
    assert clip.audio.shape == (RATE // 10,)
    # 16-bit PCM: within one step, 2**-15, of the sine that was written (libsndfile writes
    # floats at scale 32767 and reads at 1/32768, so rounding alone does not bound it)
    assert np.max(np.abs(clip.audio - SINE)) <= 1 / 32768


def test_unchanged_valid_checkpoint_loads_as_saved():
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "valid.pt"
        path.write_bytes(VALID[".pt"])
        loaded = load_checkpoint(path)
    check_checkpoint(loaded)
    model, payload = loaded
    assert model.config == TINY and payload["step"] == 3
    got = model.state_dict()
    assert got.keys() == TINY_STATE.keys()
    assert all(torch.equal(got[key], TINY_STATE[key]) for key in got)


def test_flac_claiming_a_huge_length_is_an_input_error():
    # bytes 21-25 hold the 36-bit total-samples field of the STREAMINFO block
    data = bytearray(VALID[".flac"])
    data[21] |= 0x0F  # the low 4 bits of byte 21 and bytes 22-25: all ones = 2**36 - 1 samples
    data[22:26] = b"\xff" * 4
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "huge.flac"
        path.write_bytes(bytes(data))
        with pytest.raises(InputError, match="huge.flac"):
            load_audio(path)


@pytest.mark.parametrize("suffix, load", [(".wav", load_audio), (".pt", load_checkpoint)])
def test_empty_file_is_an_input_error_naming_the_file(suffix, load):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"empty{suffix}"
        path.write_bytes(b"")
        with pytest.raises(InputError, match=f"empty{suffix}"):
            load(path)


# --- structured edits of a valid checkpoint's contents (where byte mutations rarely reach) ----

def set_config(**values):
    return lambda payload: payload["config"].update(values)


def first_weight(value):
    return lambda payload: payload["model"].update({next(iter(payload["model"])): value})


PAYLOAD_EDITS = [
    pytest.param(first_weight(torch.zeros(3)), id="weight-of-wrong-shape"),
    pytest.param(lambda p: p["model"].update(bogus=torch.zeros(3)), id="unexpected-weight"),
    pytest.param(lambda p: p["model"].pop(next(iter(p["model"]))), id="missing-weight"),
    pytest.param(lambda p: p.update(ema_state={"a": torch.zeros(1)}), id="foreign-ema-state"),
    pytest.param(lambda p: p.update(version="1"), id="version-as-text"),
    pytest.param(lambda p: p.pop("config"), id="no-config"),
    pytest.param(set_config(bogus=1), id="unknown-config-key"),
    pytest.param(set_config(blocks=0), id="zero-blocks"),
    pytest.param(set_config(kernel_size=2.5), id="fractional-kernel"),
    pytest.param(lambda p: p.update(config=[1, 2]), id="config-not-a-dict"),
    pytest.param(set_config(cond="speaker", n_speakers="x"), id="speaker-count-as-text"),
    pytest.param(lambda p: p.update(model=[1]), id="model-not-a-dict"),
    pytest.param(lambda p: p.update(ema_state=[1]), id="ema-state-not-a-dict"),
]


@pytest.mark.parametrize("edit", PAYLOAD_EDITS)
def test_edited_checkpoint_contents_give_one_line_input_error(tmp_path, edit):
    seed = tmp_path / "seed.pt"
    seed.write_bytes(VALID[".pt"])
    payload = torch.load(seed, weights_only=True)
    edit(payload)
    path = tmp_path / "edited.pt"
    torch.save(payload, path)
    with pytest.raises(InputError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert "\n" not in message and "edited.pt" in message, message
