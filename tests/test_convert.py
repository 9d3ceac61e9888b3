"""``wavebench convert``: other projects' WaveNet checkpoints, checked against those projects' own
outputs (``tests/data/peers``, whose README.md says how each was made).

Tolerances: the converted float32 model against the source's float32 outputs, 1e-5 (the peers'
README suggests it; float32 rounding in a different order of operations is about 1e-6 here).
"""
import hashlib
import io
import json
import os
import pickle
import sys

import numpy as np
import pytest
import torch

from reference_model.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from reference_model.config import ModelConfig
from reference_model.convert import convert, convert_checkpoint
from reference_model.convert.safe_pickle import RestrictedUnpickler
from reference_model.heads import log_probs
from reference_model.model import WaveNet, vocoder_alignment
from wavebench.cli import main
from wavebench_base.errors import InputError

PEERS = os.path.join(os.path.dirname(__file__), "data", "peers")
PW = os.path.join(PEERS, "pytorch-wavenet")
VOC = os.path.join(PEERS, "wavenet_vocoder")
TOL = 1e-5


def peer(*parts):
    return os.path.join(PEERS, *parts)


def model_of(converted, dtype=torch.float32):
    model = WaveNet(converted.config)
    model.load_state_dict(converted.state)
    return model.to(dtype).eval()


def one_line(exc_info, path) -> str:
    """The error's message, which must be one line naming ``path``."""
    text = str(exc_info.value)
    assert "\n" not in text and str(path) in text, text
    return text


def test_copied_fixtures_match_the_recorded_checksums():
    lines = open(peer("SHA256SUMS")).read().split("\n")
    sums = {name.removeprefix("./"): digest for digest, name in
            (line.split(None, 1) for line in lines if line.strip())}
    present = [name for name in sums if os.path.exists(peer(name))]
    assert len(present) == 27  # the files the tests read (README.md and LICENSES.md aside)
    for name in present:
        with open(peer(name), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == sums[name], name


# pytorch-wavenet -------------------------------------------------------------------------------

@pytest.mark.parametrize("fixture", ["bias_true", "bias_false"])
@pytest.mark.parametrize("route", ["state_dict.pt", "model_pickle.pt"])
def test_pytorch_wavenet_reproduces_the_source_logits(fixture, route):
    folder = os.path.join(PW, fixture)
    hparams = os.path.join(folder, "config.json") if route == "state_dict.pt" else None
    converted = convert("pytorch-wavenet", os.path.join(folder, route), hparams)
    c = converted.config
    assert (c.blocks, c.layers, c.kernel_size, c.classes) == (2, 4, 2, 256)
    assert c.receptive_field == 31
    codes = torch.from_numpy(np.load(os.path.join(folder, "input_codes.npy")))[None]  # [1, 231]
    with torch.no_grad():
        ours = model_of(converted)(codes)[0]  # [256, 231]: position t predicts codes[t]
    source = np.load(os.path.join(folder, "logits.npy"))  # [200, 256]: row j predicts codes[j + 31]
    diff = np.abs(ours[:, 31:].T.numpy() - source)
    assert diff.max() <= TOL, diff.max()


@pytest.mark.parametrize("fixture", ["bias_true", "bias_false"])
def test_pytorch_wavenet_pickle_and_state_dict_give_the_same_model(fixture):
    folder = os.path.join(PW, fixture)
    pickled = convert("pytorch-wavenet", os.path.join(folder, "model_pickle.pt"))
    plain = convert("pytorch-wavenet", os.path.join(folder, "state_dict.pt"),
                    os.path.join(folder, "config.json"))
    assert pickled.config == plain.config
    assert pickled.state.keys() == plain.state.keys()
    assert all(torch.equal(pickled.state[k], plain.state[k]) for k in plain.state)
    bias = fixture == "bias_true"
    assert any("set to zero" in t for t in plain.transformations) is not bias
    assert bias or not plain.state["layers.0.conv.bias"].any()


def test_pickled_model_is_read_without_importing_its_modules():
    convert("pytorch-wavenet", os.path.join(PW, "bias_true", "model_pickle.pt"))
    assert "wavenet_model" not in sys.modules and "wavenet_modules" not in sys.modules


def test_bare_state_dict_without_hparams_says_what_is_missing():
    path = os.path.join(PW, "bias_true", "state_dict.pt")
    with pytest.raises(InputError, match=r"8 layers form blocks; derived residual_channels=16, "
                                         r"dilation_channels=16.*missing layers and blocks: "
                                         r"pass --hparams") as err:
        convert("pytorch-wavenet", path)
    one_line(err, path)


@pytest.mark.parametrize("change, message", [
    ({"residual_channels": 32}, "residual_channels is 32 but the checkpoint's weights say 16"),
    ({"bias": False}, "bias is False but the checkpoint's weights say True"),
    ({"layers": 3}, r"layers x blocks is '3 x 2' but the checkpoint's weights say '8 layers'"),
    ({"kernel_size": 3}, "kernel_size is 3 but"),
    ({"classes": 65536}, "classes is 65536 but"),
    ({"stacks": 2}, r"unknown key\(s\) 'stacks'"),
])
def test_pytorch_wavenet_hparams_that_contradict_the_weights(tmp_path, change, message):
    config = json.load(open(os.path.join(PW, "bias_true", "config.json")))
    hparams = tmp_path / "config.json"
    hparams.write_text(json.dumps({**config, **change}))
    with pytest.raises(InputError, match=message) as err:
        convert("pytorch-wavenet", os.path.join(PW, "bias_true", "state_dict.pt"), hparams)
    one_line(err, hparams)


def test_pytorch_wavenet_hparams_that_contradict_the_pickled_attributes(tmp_path):
    hparams = tmp_path / "config.json"
    hparams.write_text(json.dumps({"layers": 2, "blocks": 4}))  # 8 layers, but not the pickle's
    with pytest.raises(InputError, match="layers is 2 but the pickled model records 4") as err:
        convert("pytorch-wavenet", os.path.join(PW, "bias_true", "model_pickle.pt"), hparams)
    one_line(err, hparams)


def test_float64_source_weights_are_converted_and_noted(tmp_path):
    state = torch.load(os.path.join(PW, "bias_true", "state_dict.pt"), weights_only=True)
    path = tmp_path / "state_dict.pt"
    torch.save({k: v.double() for k, v in state.items()}, path)
    config = os.path.join(PW, "bias_true", "config.json")
    converted = convert("pytorch-wavenet", path, config)
    assert "weights stored as float64 in the source converted to float32" \
        in converted.transformations
    reference = convert("pytorch-wavenet", os.path.join(PW, "bias_true", "state_dict.pt"), config)
    assert all(torch.equal(converted.state[k], reference.state[k]) for k in reference.state)


def test_pytorch_wavenet_blocks_follow_from_layers_and_sample_rate_from_hparams(tmp_path):
    hparams = tmp_path / "config.json"
    hparams.write_text(json.dumps({"layers": 4, "sample_rate": 8000}))
    converted = convert("pytorch-wavenet", os.path.join(PW, "bias_false", "state_dict.pt"),
                        hparams)
    assert (converted.config.blocks, converted.config.sample_rate) == (2, 8000)
    assert not any("assumed" in t for t in converted.transformations)


# wavenet_vocoder -------------------------------------------------------------------------------

def vocoder_inputs(folder, config):
    """The source's input as this model takes it: codes, or float samples for scalar input."""
    if config.input == "scalar":
        return torch.from_numpy(np.load(os.path.join(folder, "input_audio.npy")))[None]
    return torch.from_numpy(np.load(os.path.join(folder, "input_codes.npy")))[None]


def speaker_of(folder, config):
    return torch.from_numpy(np.load(os.path.join(folder, "speaker.npy"))) \
        if config.uses_speaker else None


@pytest.mark.parametrize("fixture, checkpoint", [
    ("softmax_mel", "checkpoint.pth"),
    ("softmax_mel", "checkpoint_generation_fast.pth"),  # weight norm removed: same outputs
    ("mol_scalar_speaker", "checkpoint.pth"),
])
def test_wavenet_vocoder_reproduces_the_source_output(fixture, checkpoint):
    folder = os.path.join(VOC, fixture)
    converted = convert("wavenet-vocoder", os.path.join(folder, checkpoint),
                        os.path.join(folder, "hparams.json"))
    c = converted.config
    model = model_of(converted)
    mel = torch.from_numpy(np.load(os.path.join(folder, "mel.npy")))[None]  # [1, 8, 62], context
    with torch.no_grad():
        cond_up = model.upsample(mel)
        assert np.abs(cond_up[0].numpy() - np.load(os.path.join(folder, "c_upsampled.npy"))).max() \
            <= TOL
        ours = model.forward_upsampled(vocoder_inputs(folder, c), vocoder_alignment(cond_up),
                                       speaker_of(folder, c))[0]
    source = np.load(os.path.join(folder, "output.npy"))  # column t predicts sample t + 1
    rf, T = c.receptive_field, source.shape[1]
    assert rf == (31 if fixture == "softmax_mel" else 29)
    # columns rf-1 .. T-2 (full receptive field; the last has no target here) = positions rf .. T-1
    diff = np.abs(ours[:, rf:].numpy() - source[:, rf - 1:T - 1])
    assert diff.max() <= TOL, diff.max()


def test_wavenet_vocoder_through_forward_away_from_the_edges():
    """``forward`` with the 58 frames proper: its own edge frames stand in for the context
    frames, so the output matches wherever the upsampled features do not reach the edges."""
    folder = os.path.join(VOC, "softmax_mel")
    converted = convert("wavenet-vocoder", os.path.join(folder, "checkpoint.pth"),
                        os.path.join(folder, "hparams.json"))
    model, rf = model_of(converted), converted.config.receptive_field
    mel = torch.from_numpy(np.load(os.path.join(folder, "mel.npy")))[None]
    codes = vocoder_inputs(folder, converted.config)
    with torch.no_grad():
        ours = model(codes, mel[:, :, 2:-2])[0]
        same = torch.isclose(model.upsample_cond(mel[:, :, 2:-2]),
                             vocoder_alignment(model.upsample(mel)), atol=1e-6, rtol=0).all(1)[0]
    source = np.load(os.path.join(folder, "output.npy"))
    # position p = t + 1 sees the aligned features of positions p - rf + 1 .. p
    positions = [p for p in range(rf, codes.shape[1]) if same[p - rf + 1:p + 1].all()]
    assert len(positions) > 150
    diff = np.abs(ours[:, positions].numpy() - source[:, [p - 1 for p in positions]])
    assert diff.max() <= TOL, diff.max()


def test_mixture_nll_equals_wavenet_vocoder_loss():
    """heads.log_probs on the source's float64 output is minus discretized_mix_logistic_loss,
    per sample and summed (its ``reduce=True`` is a sum), both branches of its bins included."""
    folder = os.path.join(VOC, "mol_scalar_speaker")
    config = convert("wavenet-vocoder", os.path.join(folder, "checkpoint.pth"),
                     os.path.join(folder, "hparams.json")).config
    output = torch.from_numpy(np.load(os.path.join(folder, "output_float64.npy")))[None]
    audio = torch.from_numpy(np.load(os.path.join(folder, "input_audio.npy")))[None]
    logp = log_probs(output[:, :, :-1], audio[:, 1:], config)
    assert logp.dtype == torch.float64 and logp.shape == (1, 231)
    nll = np.load(os.path.join(folder, "nll_per_sample_float64.npy"))
    assert np.abs(-logp[0].numpy() - nll).max() <= TOL
    recorded = json.load(open(os.path.join(folder, "nll.json")))
    assert abs(-logp.sum().item() - recorded["reduce_true_value_float64_model"]) <= TOL


def test_mixture_nll_of_the_converted_model_in_float64():
    folder = os.path.join(VOC, "mol_scalar_speaker")
    converted = convert("wavenet-vocoder", os.path.join(folder, "checkpoint.pth"),
                        os.path.join(folder, "hparams.json"))
    model, c = model_of(converted, torch.float64), converted.config
    mel = torch.from_numpy(np.load(os.path.join(folder, "mel.npy"))).double()[None]
    audio = vocoder_inputs(folder, c).double()
    with torch.no_grad():
        output = model.forward_upsampled(audio, vocoder_alignment(model.upsample(mel)),
                                         speaker_of(folder, c))
    rf, T = c.receptive_field, audio.shape[1]
    logp = log_probs(output[:, :, rf:], audio[:, rf:], c)[0]  # positions rf .. T-1
    nll = np.load(os.path.join(folder, "nll_per_sample_float64.npy"))  # entry t: sample t + 1
    # float32-rounded folded weights against the source's float64 ones: about 1e-6 here
    assert np.abs(-logp.numpy() - nll[rf - 1:T - 1]).max() <= TOL


def write_hparams(tmp_path, fixture, **change):
    hparams = json.load(open(os.path.join(VOC, fixture, "hparams.json")))
    for key, value in change.items():
        if key in ("upsample_activation", "freq_axis_kernel_size"):
            hparams["upsample_params"] = {**hparams["upsample_params"], key: value}
        elif value is None:
            del hparams[key]
        else:
            hparams[key] = value
    path = tmp_path / "hparams.json"
    path.write_text(json.dumps(hparams))
    return path


@pytest.mark.parametrize("fixture, change, message", [
    ("softmax_mel", {"layers": 7}, "layers is 7 but the checkpoint's weights say 8"),
    ("softmax_mel", {"residual_channels": 32}, "residual_channels is 32 but"),
    ("softmax_mel", {"gate_channels": 64}, "gate_channels is 64 but"),
    ("softmax_mel", {"kernel_size": 3}, "kernel_size is 3 but"),
    ("softmax_mel", {"out_channels": 30}, r"out_channels \(30\) must equal quantize_channels"),
    ("softmax_mel", {"quantize_channels": 512, "out_channels": 512}, "out_channels is 512 but"),
    ("softmax_mel", {"cin_channels": -1}, r"cin_channels is -1 but .* say '8 \(conv_layers"),
    ("softmax_mel", {"stacks": 3}, r"layers \(8\) is not a multiple of stacks \(3\)"),
    ("softmax_mel", {"cin_pad": 1}, "cin_pad is 1 but"),
    ("softmax_mel", {"hop_size": 256}, r"hop_size is 256 but upsample_scales \[2, 2\]"),
    ("mol_scalar_speaker", {"input_type": "mulaw-quantize", "out_channels": 65536},
     "out_channels is 65536 but"),
    ("mol_scalar_speaker", {"out_channels": 32}, "not a multiple of 3"),
    ("mol_scalar_speaker", {"gin_channels": -1}, "gin_channels is -1 but"),
    ("mol_scalar_speaker", {"n_speakers": 4}, "n_speakers is 4 but"),
])
def test_wavenet_vocoder_hparams_that_contradict_the_weights(tmp_path, fixture, change, message):
    hparams = write_hparams(tmp_path, fixture, **change)
    with pytest.raises(InputError, match=message) as err:
        convert("wavenet-vocoder", os.path.join(VOC, fixture, "checkpoint.pth"), hparams)
    one_line(err, hparams)


@pytest.mark.parametrize("fixture, change, message", [
    ("mol_scalar_speaker", {"input_type": "mulaw"}, "'mulaw' .* is not supported"),
    ("mol_scalar_speaker", {"output_distribution": "Normal"}, "'Normal' is not supported yet"),
    ("softmax_mel", {"upsample_activation": "LeakyReLU"}, "upsample_activation 'LeakyReLU'"),
    ("softmax_mel", {"freq_axis_kernel_size": 3}, "freq_axis_kernel_size 3 is not supported"),
    ("softmax_mel", {"upsample_net": "UpsampleNetwork"}, "upsample_net 'UpsampleNetwork'"),
    ("softmax_mel", {"upsample_conditional_features": False},
     "upsample_conditional_features is False"),
    ("softmax_mel", {"stacks": None}, r"missing key\(s\) stacks"),
])
def test_wavenet_vocoder_variants_not_supported(tmp_path, fixture, change, message):
    hparams = write_hparams(tmp_path, fixture, **change)
    with pytest.raises(InputError, match=message) as err:
        convert("wavenet-vocoder", os.path.join(VOC, fixture, "checkpoint.pth"), hparams)
    one_line(err, hparams)


def test_wavenet_vocoder_dropout_is_noted_and_ignored(tmp_path):
    hparams = write_hparams(tmp_path, "softmax_mel", dropout=0.05)
    converted = convert("wavenet-vocoder", os.path.join(VOC, "softmax_mel", "checkpoint.pth"),
                        hparams)
    assert any("dropout 0.05" in t for t in converted.transformations)


def test_wavenet_vocoder_needs_its_hparams():
    path = os.path.join(VOC, "softmax_mel", "checkpoint.pth")
    with pytest.raises(InputError, match="does not record its architecture: pass --hparams") \
            as err:
        convert("wavenet-vocoder", path)
    one_line(err, path)
    missing = os.path.join(VOC, "softmax_mel", "no_such_hparams.json")
    with pytest.raises(InputError, match="hparams file not found") as err:
        convert("wavenet-vocoder", path, missing)
    one_line(err, missing)


def test_weight_g_is_used(tmp_path):
    """weight_g is not ||weight_v|| in the fixtures; scaling it must change the folded weight."""
    source = torch.load(os.path.join(VOC, "softmax_mel", "checkpoint.pth"), weights_only=True)
    state = dict(source["state_dict"])
    state["first_conv.weight_g"] = state["first_conv.weight_g"] * 2
    path = tmp_path / "checkpoint.pth"
    torch.save({**source, "state_dict": state}, path)
    hparams = os.path.join(VOC, "softmax_mel", "hparams.json")
    doubled = convert("wavenet-vocoder", path, hparams).state["start.weight"]
    original = convert("wavenet-vocoder", os.path.join(VOC, "softmax_mel", "checkpoint.pth"),
                       hparams).state["start.weight"]
    torch.testing.assert_close(doubled, 2 * original)


# files from neither project, damaged files, and pickles that would run code ------------------

@pytest.mark.parametrize("source", ["pytorch-wavenet", "wavenet-vocoder"])
def test_checkpoint_from_neither_project(tmp_path, source):
    path = tmp_path / "other.pt"
    torch.save({"encoder.weight": torch.zeros(2, 2), "decoder.bias": torch.zeros(2)}, path)
    with pytest.raises(InputError, match="not a (pytorch-wavenet|wavenet_vocoder) checkpoint: "
                                         "found a bare state_dict with 2 tensors") as err:
        convert(source, path, os.path.join(VOC, "softmax_mel", "hparams.json"))
    one_line(err, path)


def test_checkpoint_of_the_other_project_names_the_right_option():
    path = os.path.join(VOC, "softmax_mel", "checkpoint.pth")
    with pytest.raises(InputError, match="wavenet_vocoder checkpoint, not a pytorch-wavenet one: "
                                         "use --from wavenet-vocoder") as err:
        convert("pytorch-wavenet", path)
    one_line(err, path)
    path = os.path.join(PW, "bias_true", "state_dict.pt")
    with pytest.raises(InputError, match="use --from pytorch-wavenet"):
        convert("wavenet-vocoder", path, os.path.join(VOC, "softmax_mel", "hparams.json"))


def test_wavebench_checkpoint_is_not_converted(tmp_path):
    path = tmp_path / "ours.pt"
    config = ModelConfig(blocks=1, layers=2, residual_channels=4, dilation_channels=4,
                         skip_channels=4, end_channels=4, classes=16)
    save_checkpoint(path, config=config, model_state=WaveNet(config).state_dict())
    with pytest.raises(InputError, match="already a wavebench checkpoint") as err:
        convert("pytorch-wavenet", path)
    one_line(err, path)


@pytest.mark.parametrize("source, name", [
    ("pytorch-wavenet", os.path.join("pytorch-wavenet", "bias_true", "model_pickle.pt")),
    ("pytorch-wavenet", os.path.join("pytorch-wavenet", "bias_true", "state_dict.pt")),
    ("wavenet-vocoder", os.path.join("wavenet_vocoder", "softmax_mel", "checkpoint.pth")),
])
def test_truncated_and_empty_files(tmp_path, source, name):
    data = open(peer(name), "rb").read()
    hparams = os.path.join(VOC, "softmax_mel", "hparams.json")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[:len(data) // 2])
    with pytest.raises(InputError, match="cut short") as err:
        convert(source, truncated, hparams)
    one_line(err, truncated)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="checkpoint is empty") as err:
        convert(source, empty, hparams)
    one_line(err, empty)
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\n")
    with pytest.raises(InputError, match="not a readable") as err:
        convert(source, text, hparams)
    one_line(err, text)


class Trap:
    """Pickles as a call of ``action`` on ``args``, which a naive load would run."""

    def __init__(self, action, *args):
        self.action, self.args = action, args

    def __reduce__(self):
        return self.action, self.args


def trap_payloads(marker):
    return {
        f"{os.system.__module__}.system": Trap(os.system, f"touch '{marker}'"),
        "exec": Trap(exec, f"open({str(marker)!r}, 'w').close()"),
        "torch.nn.modules.linear.Linear": torch.nn.Linear(1, 1),  # harmless, but not allowed
    }


@pytest.mark.parametrize("refused", ["system", "exec", "Linear"])
def test_pickle_that_references_other_globals_is_refused_unrun(tmp_path, refused):
    marker = tmp_path / "marker"
    qualname, payload = next((k, v) for k, v in trap_payloads(marker).items() if refused in k)
    path = tmp_path / "snapshot.pt"
    state = torch.load(os.path.join(PW, "bias_true", "state_dict.pt"), weights_only=True)
    torch.save({**state, "extra": payload}, path)  # looks like pytorch-wavenet's otherwise
    with pytest.raises(InputError, match=rf"refused: the pickle references \S*{qualname}") \
            as err:
        convert("pytorch-wavenet", path)
    one_line(err, path)
    assert not marker.exists()
    if refused != "Linear":  # the trap is armed: loading it naively runs the payload
        torch.load(path, weights_only=False)
        assert marker.exists()


@pytest.mark.parametrize("data, message", [
    # protocol 2: GLOBAL torch.FloatTensor (allowed as a name only), then a call of it
    (b"\x80\x02ctorch\nFloatTensor\nK\x05\x85R.", "calls torch.FloatTensor"),
    (b"\x80\x02cposix\nsystem\nX\x04\x00\x00\x00true\x85R.", "refused global posix.system"),
    # protocol 4 names its globals with STACK_GLOBAL, which goes through find_class too
    (b"\x80\x04\x8c\x05posix\x94\x8c\x06system\x94\x93X\x04\x00\x00\x00true\x85R.",
     "refused global posix.system"),
])
def test_restricted_unpickler_runs_nothing_it_is_not_allowed_to(data, message):
    with pytest.raises(pickle.UnpicklingError, match=message):
        RestrictedUnpickler(io.BytesIO(data)).load()


def test_pickle_of_another_model_class_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(torch.nn.Sequential(torch.nn.Conv1d(1, 1, 1)), path)
    with pytest.raises(InputError, match="torch.nn.modules.container.Sequential") as err:
        convert("pytorch-wavenet", path)
    one_line(err, path)


# the command line ------------------------------------------------------------------------------

def test_cli_writes_a_checkpoint_that_loads_with_its_record(tmp_path, capsys):
    source = os.path.join(PW, "bias_false", "model_pickle.pt")
    out = tmp_path / "model.pt"
    code = main(["convert", "--from", "pytorch-wavenet", source, "-o", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and f"wrote {out}" in printed and "  - filter and gate" in printed
    model, payload = load_checkpoint(out)
    record = payload["converted"]
    assert record["source"] == "pytorch-wavenet" and record["source_file"] == "model_pickle.pt"
    assert record["source_sha256"] == hashlib.sha256(open(source, "rb").read()).hexdigest()
    assert all(isinstance(t, str) for t in record["transformations"])
    assert any("mu = classes" in t for t in record["transformations"])
    assert read_checkpoint(out)["converted"] == record
    codes = torch.from_numpy(np.load(os.path.join(PW, "bias_false", "input_codes.npy")))[None]
    with torch.no_grad():
        logits = model(codes)[0, :, 31:].T.numpy()
    assert np.abs(logits - np.load(os.path.join(PW, "bias_false", "logits.npy"))).max() <= TOL


def test_cli_wavenet_vocoder_records_the_hparams(tmp_path, capsys):
    folder = os.path.join(VOC, "mol_scalar_speaker")
    out = tmp_path / "model.pt"
    code = main(["convert", "--from", "wavenet-vocoder", os.path.join(folder, "checkpoint.pth"),
                 "--hparams", os.path.join(folder, "hparams.json"), "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    _, payload = load_checkpoint(out)
    record = payload["converted"]
    assert record["source"] == "wavenet_vocoder" and record["hparams_file"] == "hparams.json"
    assert any("weight normalization folded" in t for t in record["transformations"])
    assert payload["config"]["output"] == "mol" and payload["config"]["mel_norm"] == "none"


def test_cli_bad_input_is_one_line_and_exit_1(tmp_path, capsys):
    source = os.path.join(VOC, "softmax_mel", "checkpoint.pth")
    out = tmp_path / "model.pt"
    code = main(["convert", "--from", "wavenet-vocoder", source, "-o", str(out)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and lines[0].startswith(f"error: {source}: ")
    assert not out.exists()
    code = main(["convert", "--from", "wavenet-vocoder", source, "-o", source])
    assert code == 1 and "overwrite the source" in capsys.readouterr().err


def test_cli_usage_errors_exit_2(capsys):
    assert main(["convert", "x.pt", "-o", "y.pt"]) == 2
    assert main(["convert", "--from", "tensorflow", "x.pt", "-o", "y.pt"]) == 2
    capsys.readouterr()


def test_convert_checkpoint_refuses_an_unknown_source(tmp_path):
    with pytest.raises(InputError, match="unknown source 'keras'"):
        convert_checkpoint("keras", tmp_path / "a.pt", tmp_path / "b.pt")
