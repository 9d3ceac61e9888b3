"""``wavebench speed`` and ``wavebench generate``: tables, skipped devices, WAV output, bad input."""
import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from reference_model.config import PRESETS
from reference_model.model import WaveNet
from wavebench.cli import main
from wavebench.speed import add_speedup, run_speed
from wavebench_base.errors import InputError

REQUIRED = ["device", "sampler", "batch", "threads", "samples", "seconds_median", "samples_per_s",
            "samples_per_s_per_stream", "rtf", "peak_mem_mb", "speedup"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_speed_table_columns_arithmetic_and_skipped_device(tmp_path):
    table = run_speed(tmp_path, preset="tiny", devices=("cpu", "cuda"),
                      samplers=("cached", "fused", "cuda-graph"), batches=(1, 2), threads=(1,),
                      samples=200, repeats=2, log=lambda line: None)
    on_disk = pd.read_csv(tmp_path / "speed.csv")
    assert set(REQUIRED) <= set(on_disk.columns)
    md = (tmp_path / "speed.md").read_text()
    # a header, a rule and one line per measured row; the skipped ones, one line per reason
    assert md.count("\n|") == 2 + (table["status"] == "ok").sum()
    assert "- cpu: cuda-graph (2 combinations): sampler 'cuda-graph' needs --device cuda" in md
    if not torch.cuda.is_available():
        assert "- cuda: cached, fused, cuda-graph (6 combinations): device 'cuda' asked" in md
    assert (tmp_path / "speed.png").read_bytes()[:4] == b"\x89PNG"
    ok = table[table["status"] == "ok"]
    assert set(ok["sampler"]) == {"cached", "fused"} and set(ok["device"]) == {"cpu"}
    # the column arithmetic is checked against hand-worked values in the test below
    assert (ok[["seconds_median", "samples_per_s", "rtf", "x_realtime"]] > 0).all().all()
    assert ok[ok["sampler"] == "cached"]["speedup"].tolist() == [1.0, 1.0]
    cuda = table[table["device"] == "cuda"]
    if not torch.cuda.is_available():
        assert (cuda["status"] == "skipped").all()
        assert cuda["note"].str.contains("CUDA is not available").all()
    assert table[(table["sampler"] == "cuda-graph") & (table["device"] == "cpu")]["status"].eq(
        "skipped").all()


# Timed wall seconds of the three repeats per (sampler, batch), fed in place of real runs, and
# the columns worked by hand (preset tiny: 16 kHz; 800 samples per stream, 100 for naive).
FAKE_TIMES = {("cached", 1): [0.40, 0.10, 0.20], ("cached", 4): [0.5, 0.5, 0.8],
              ("fused", 1): [0.05, 0.04, 0.06], ("fused", 4): [0.1, 0.3, 0.2],
              ("naive", 1): [0.5, 0.5, 0.5], ("naive", 4): [1.0, 2.0, 1.0]}
HAND_WORKED = pd.DataFrame(
    [  # sampler, batch, samples, median s, samples/s, per stream, rtf, x real time, speedup
        ("cached", 1, 800, 0.20, 4000.0, 4000.0, 4.0, 0.25, 1.0),     # 800 / 0.2; 0.2 / 0.05 s
        ("cached", 4, 800, 0.50, 6400.0, 1600.0, 10.0, 0.4, 1.0),     # 4 x 800 / 0.5; 6400 / 16k
        ("fused", 1, 800, 0.05, 16000.0, 16000.0, 1.0, 1.0, 4.0),     # speedup 16000 / 4000
        ("fused", 4, 800, 0.20, 16000.0, 4000.0, 4.0, 1.0, 2.5),      # speedup 16000 / 6400
        ("naive", 1, 100, 0.50, 200.0, 200.0, 80.0, 0.0125, 0.05),    # rtf 0.5 / (100 / 16000)
        ("naive", 4, 100, 1.00, 400.0, 100.0, 160.0, 0.025, 0.0625),  # speedup 400 / 6400
    ],
    columns=["sampler", "batch", "samples", "seconds_median", "samples_per_s",
             "samples_per_s_per_stream", "rtf", "x_realtime", "speedup"])


def test_speed_columns_from_known_times_worked_by_hand(tmp_path, monkeypatch):
    import types

    import wavebench.speed as speed
    timed = {key: iter(times) for key, times in FAKE_TIMES.items()}
    calls = []

    def fake_generate(model, n, **kwargs):
        calls.append((kwargs["sampler"], kwargs["batch"], n))
        key = kwargs["sampler"], kwargs["batch"]
        # the untimed warm-up is min(samples, 64) steps; the timed runs are the full length
        seconds = 99.0 if n == 64 else next(timed[key])
        return types.SimpleNamespace(seconds=seconds)

    monkeypatch.setattr(speed, "generate", fake_generate)
    table = run_speed(tmp_path, preset="tiny", samplers=("cached", "fused", "naive"),
                      batches=(1, 4), threads=(1,), samples=800, naive_samples=100, repeats=3,
                      log=lambda line: None)
    assert all(next(times, None) is None for times in timed.values())  # 3 timed runs each
    assert ("naive", 4, 64) in calls and ("naive", 4, 100) in calls
    for got in (table, pd.read_csv(tmp_path / "speed.csv")):
        got = got[HAND_WORKED.columns].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, HAND_WORKED, check_exact=False, rtol=1e-12)


def test_timing_leaves_the_callers_thread_counts_alone(tmp_path, monkeypatch):
    import types

    import numba

    import wavebench.speed as speed
    seen = []

    def fake_generate(model, n, **kwargs):
        seen.append(torch.get_num_threads())
        return types.SimpleNamespace(seconds=1.0)
    monkeypatch.setattr(speed, "generate", fake_generate)
    before = torch.get_num_threads(), numba.get_num_threads()
    wanted = 2 if before[0] == 1 else 1  # a count other than the caller's
    run_speed(tmp_path, preset="tiny", samplers=("cached",), threads=(wanted,), samples=100,
              repeats=1, log=lambda line: None)
    assert set(seen) == {wanted}  # the rows ran at their own count ...
    assert (torch.get_num_threads(), numba.get_num_threads()) == before  # ... and it is undone


def test_speedup_is_relative_to_the_baseline_at_the_same_batch():
    table = pd.DataFrame({"device": ["cpu"] * 4, "sampler": ["cached", "fused"] * 2,
                          "batch": [1, 1, 8, 8], "threads": [1] * 4, "status": ["ok"] * 4,
                          "samples_per_s": [100.0, 1500.0, 400.0, 1000.0]})
    assert add_speedup(table, "cached")["speedup"].tolist() == [1.0, 15.0, 1.0, 2.5]
    assert add_speedup(table, "naive")["speedup"].isna().all()


def test_speed_bad_arguments(tmp_path):
    with pytest.raises(InputError, match="unknown sampler 'turbo'"):
        run_speed(tmp_path, samplers=("turbo",))
    with pytest.raises(InputError, match="--batch needs positive integers"):
        run_speed(tmp_path, batches=(0,))
    assert main(["speed", "--batch", "1,x", "-o", str(tmp_path)]) == 1


def run_cli(args, capsys):
    code = main(args)
    return code, capsys.readouterr().err.strip().splitlines()


def test_generate_same_seed_same_wav_bytes_across_samplers_and_runs(tmp_path, capsys):
    outs = []
    for i, sampler in enumerate(["naive", "cached", "fused", "fused"]):
        out = tmp_path / f"run{i}"
        code, _ = run_cli(["generate", "--preset", "tiny", "-o", str(out), "--seconds", "0.02",
                           "--batch", "2", "--seed", "3", "--sampler", sampler, "--no-progress"],
                          capsys)
        assert code == 0
        outs.append([(out / f"sample_00{b}.wav").read_bytes() for b in range(2)])
    assert all(o == outs[0] for o in outs)
    audio, sr = sf.read(tmp_path / "run0" / "sample_000.wav", dtype="int16")
    assert sr == 16000 and len(audio) == 320
    assert sf.info(tmp_path / "run0" / "sample_000.wav").subtype == "PCM_16"


def mel_checkpoint(tmp_path):
    from reference_model.checkpoint import save_checkpoint
    config = PRESETS["tiny"].model.replace(cond="mel")
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "mel.pt", config=config, model_state=WaveNet(config).state_dict())


def test_generate_copy_synthesis_and_priming(tmp_path, capsys):
    ckpt = mel_checkpoint(tmp_path)
    t = np.arange(2048) / 16000
    sf.write(tmp_path / "clip.wav", 0.5 * np.sin(2 * np.pi * 220 * t), 16000)
    code, err = run_cli(["generate", "--checkpoint", str(ckpt), "-o", str(tmp_path / "out"),
                         "--mel-from", str(tmp_path / "clip.wav"), "--prime",
                         str(tmp_path / "clip.wav"), "--prime-seconds", "0.032", "--no-progress"],
                        capsys)
    assert code == 0, err
    # 2048 samples = 8 frames of 256; the 512-sample prime leaves 1536 to generate
    assert sf.info(tmp_path / "out" / "sample_000.wav").frames == 1536


def test_generate_bad_input_one_line_and_exit_1(tmp_path, capsys):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    sf.write(tmp_path / "short.wav", np.full(800, 0.1), 16000)
    sf.write(tmp_path / "r8k.wav", np.full(8000, 0.1), 8000)
    ckpt = mel_checkpoint(tmp_path)
    out = str(tmp_path / "out")
    cases = [
        (["--checkpoint", str(tmp_path / "missing.pt")], "checkpoint not found"),
        (["--checkpoint", str(tmp_path / "other.pt")], "not a wavebench checkpoint"),
        (["--preset", "tiny", "--prime", str(tmp_path / "short.wav"), "--prime-seconds", "1"],
         "short.wav: 0.050 s long, shorter than the 1 s"),
        (["--checkpoint", str(ckpt), "--mel-from", str(tmp_path / "r8k.wav")],
         "r8k.wav: sample rate 8000 Hz, but the model's mel frames are at 16000 Hz"),
        (["--preset", "tiny", "--checkpoint", str(ckpt)], "exactly one of --checkpoint"),
    ]
    if not torch.cuda.is_available():
        cases.append((["--preset", "tiny", "--device", "cuda"], "CUDA is not available"))
    for args, message in cases:
        code, err = run_cli(["generate", "-o", out, "--no-progress", *args], capsys)
        assert code == 1 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    code, _ = run_cli(["generate", "-o", out, "--batch", "0", "--preset", "tiny"], capsys)
    assert code == 2  # usage error


def test_a_checkpoints_preset_is_found_from_its_architecture():
    from reference_model.config import PRESETS, get_preset
    from wavebench.generate import preset_of
    music = get_preset("music").model.replace(cond="mel", n_mels=80)
    assert preset_of(music, PRESETS) is PRESETS["music"]  # temperature 0.7, 30 s
    assert preset_of(music.replace(layers=7), PRESETS) is None  # custom: 1 s at T = 1


def test_generate_takes_the_presets_length_and_temperature(tmp_path, monkeypatch):
    from reference_model.config import PRESETS, Preset
    from wavebench import generate as G
    tiny = PRESETS["tiny"]
    monkeypatch.setitem(PRESETS, "tiny", Preset(tiny.model, temperature=0.0, seconds=0.01))
    result = G.run_generate(tmp_path, preset="tiny")
    meta = json.loads((tmp_path / "generation.json").read_text())
    assert (meta["samples"], meta["temperature"]) == (160, 0.0)
    assert result.codes.shape == (1, 160)


def test_cpu_peak_memory_is_per_combination():
    from wavebench.speed import peak_rss_mb, reset_peak_rss
    if not reset_peak_rss():
        pytest.skip("this OS cannot reset the peak resident size")
    big = np.ones(40_000_000)  # 320 MB
    high = peak_rss_mb()
    del big
    assert reset_peak_rss()
    assert peak_rss_mb() < high - 250  # the next combination starts from a clean peak


def test_streamed_wavs_equal_writing_each_clip_at_once(tmp_path):
    from reference_model.mulaw import mu_law_decode
    from wavebench.generate import run_generate
    from wavebench_base.audio import save_wav
    result = run_generate(tmp_path / "out", preset="tiny", seconds=0.2, batch=2, seed=3)
    for b, path in enumerate(result.paths):
        whole = save_wav(tmp_path / f"whole_{b}.wav", mu_law_decode(result.codes[b]), 16000)
        assert path.read_bytes() == whole.read_bytes()  # 3200 samples in chunks of 1024
    assert not list((tmp_path / "out").glob(".*"))  # no temporary file left


def test_speed_times_a_conditioned_mixture_checkpoint(tmp_path):
    """A saved model of wavenet_vocoder's kind (mel + speaker, scalar input, mixture head)."""
    from test_sample import MIXTURE

    from reference_model.checkpoint import save_checkpoint

    model = WaveNet(MIXTURE)
    path = save_checkpoint(tmp_path / "mixture.pt", config=MIXTURE, model_state=model.state_dict())
    table = run_speed(tmp_path / "speed", checkpoint=path, devices=("cpu",),
                      samplers=("naive", "cached", "fused"), batches=(1,), threads=(1,),
                      samples=100, naive_samples=20, repeats=1, log=lambda line: None)
    assert table["status"].tolist() == ["ok", "ok", "ok"]
    assert (table["samples_per_s"] > 0).all()
    assert (tmp_path / "speed" / "speed.md").read_text().startswith(
        "# Sampling speed: checkpoint mixture.pt, baseline cached")


def test_speed_rows_carry_the_hosts_bounds(tmp_path):
    table = run_speed(tmp_path, preset="tiny", devices=("cpu",), samplers=("naive", "fused"),
                      batches=(1, 4), threads=(1,), samples=200, naive_samples=10, repeats=1,
                      log=lambda line: None)
    info = json.loads((tmp_path / "speed.json").read_text())["host"]
    assert info["isa"] in ("avx512f", "avx2", "avx", "asimd", "neon", "unknown")
    fused = table[table["sampler"] == "fused"].set_index("batch")
    for batch in (1, 4):  # threads x min(batch x traffic, compute), worked by hand
        expected = min(batch * info["traffic_samples_per_s"], info["compute_samples_per_s"])
        assert fused.loc[batch, "bound"] == pytest.approx(expected)
        assert fused.loc[batch, "efficiency"] == pytest.approx(
            fused.loc[batch, "samples_per_s"] / expected)
    assert table[table["sampler"] == "naive"]["bound"].isna().all()
    md = (tmp_path / "speed.md").read_text()
    assert " x 64 register blocks" in info["kernels"]
    assert (f"host: {info['cpu']}, {info['isa']}; fused kernels: {info['kernels']}; "
            "weight-traffic bound") in md
    header = next(line for line in md.splitlines() if line.startswith("| device"))
    cells = [cell.strip() for cell in header.strip("|").split("|")]
    assert cells[cells.index("speedup") + 1:cells.index("speedup") + 3] == ["bound", "efficiency"]


def test_cpu_description_reads_the_widest_vector_extension():
    from wavebench.host import cpu_description
    avx2 = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 23\nmodel\t\t: 49\n"
            "model name\t: AMD EPYC 7B12\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\n")
    assert cpu_description(avx2) == {"cpu": "AMD EPYC 7B12 (family 23 model 49)", "isa": "avx2"}
    arm = "processor\t: 0\nFeatures\t: fp asimd evtstrm\n\n"
    assert cpu_description(arm)["isa"] == "asimd"


def test_isa_emulation_env_builds_for_avx2_and_refuses_others():
    from reference_model.sampling.isa import isa_of, parse_features
    from wavebench.host import EMULATED_ISA, isa_emulation_env
    with pytest.raises(ValueError, match="only avx2"):
        isa_emulation_env("sse2")
    try:
        env = isa_emulation_env("avx2", environ={"KEEP": "1"})
    except ValueError as error:  # a host without AVX2 (or not x86) says so
        assert "no AVX2" in str(error)
        return
    assert env["KEEP"] == "1" and env[EMULATED_ISA] == "avx2"
    assert isa_of(parse_features(env["NUMBA_CPU_FEATURES"])) == "avx2"
    assert env["MKL_ENABLE_INSTRUCTIONS"] == "AVX2" and env["ATEN_CPU_CAPABILITY"] == "avx2"


@pytest.mark.slow
def test_speed_isa_avx2_times_an_avx2_build(tmp_path):
    from llvmlite import binding

    from reference_model.sampling.isa import isa_of, parse_features
    host_isa = isa_of(parse_features(binding.get_host_cpu_features().flatten()))
    if host_isa == "other":
        pytest.skip("no AVX2 here")
    assert main(["speed", "--isa", "avx2", "--preset", "tiny", "--devices", "cpu", "--samplers",
                 "fused", "--batch", "1,4", "--samples", "200", "--repeats", "1",
                 "-o", str(tmp_path)]) == 0
    host = json.loads((tmp_path / "speed.json").read_text())["host"]
    assert host["kernels"] == "avx2, 1 x 64 register blocks and 6 x 16 tiles for float32 batches"
    if host_isa == "avx512":  # timed in a new process, built for AVX2
        assert host["isa"] == "avx2 (emulated on avx512f)"
    table = pd.read_csv(tmp_path / "speed.csv")
    assert (table["status"] == "ok").all() and (table["samples_per_s"] > 0).all()
