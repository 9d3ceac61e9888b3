"""``wavebench generate``'s work: sample audio from a checkpoint (or a preset's random weights)
to WAV files. The command's options are in :mod:`wavebench.commands.generate`."""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from reference_model.sampling import fastest_sampler, generate, resolve_device
from wavebench_base.errors import InputError


@dataclass
class GenerateResult:
    """Where the audio went and how fast it was made."""

    paths: list
    codes: np.ndarray  # [batch, n]
    sampler: str
    seconds: float
    samples_per_s: float


def load_model(checkpoint=None, preset=None, seed: int = 0):
    """The model of a checkpoint, or a preset with random weights (seeded) for benchmarking.

    Returns
    -------
    (WaveNet, Preset or None)
        The model in eval mode, and the preset whose generation defaults (temperature,
        seconds) apply: the one named, or the one whose architecture a checkpoint has.
    """
    from reference_model.config import PRESETS, get_preset
    from reference_model.model import WaveNet

    if (checkpoint is None) == (preset is None):
        raise InputError("give exactly one of --checkpoint CKPT or --preset NAME")
    if checkpoint is not None:
        from reference_model.checkpoint import load_checkpoint
        model, _ = load_checkpoint(checkpoint)
        return model, preset_of(model.config, PRESETS)
    chosen = get_preset(preset)
    torch.manual_seed(seed)
    return WaveNet(chosen.model).eval(), chosen


def preset_of(config, presets: dict):
    """The preset with ``config``'s architecture, or None for a custom one."""
    from reference_model.config import architecture
    return next((p for p in presets.values()
                 if architecture(p.model) == architecture(config)), None)


class WavStreams:
    """One 16-bit WAV file per stream, written chunk by chunk as the sampler makes the codes.

    Each file is written under a hidden temporary name and renamed into place when the last
    chunk is in (so a killed run never leaves a short WAV under the final name); on an error
    the temporary files are removed. The bytes equal those of writing the whole clip at once.
    """

    def __init__(self, paths, sample_rate: int, config):
        self.paths, self.sample_rate, self.config = list(paths), sample_rate, config
        self.stack = contextlib.ExitStack()
        self.files = []

    def __enter__(self):
        import soundfile as sf

        from wavebench_base.files import atomic_path

        allow_open_files(len(self.paths) + 64)
        with self.stack as stack:
            for path in self.paths:
                tmp = stack.enter_context(atomic_path(path))
                self.files.append(stack.enter_context(sf.SoundFile(
                    str(tmp), "w", samplerate=self.sample_rate, channels=1, subtype="PCM_16",
                    format="WAV")))
            self.stack = stack.pop_all()
        return self

    def write(self, codes: np.ndarray, start: int) -> None:
        """The sampler's callback: ``codes`` [batch, m] from sample ``start`` on."""
        from reference_model.codes import decode
        audio = np.clip(decode(codes, self.config), -1.0, 1.0)
        for stream, f in enumerate(self.files):
            f.write(audio[stream])

    def __exit__(self, *exc) -> bool:
        return self.stack.__exit__(*exc)


def allow_open_files(count: int) -> None:
    """Raise this process's open-file limit to ``count`` (up to the hard limit) so that a large
    batch can stream every clip at once; InputError when the system does not allow it."""
    try:
        import resource
    except ImportError:  # not POSIX: nothing to raise
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < count:
        if hard != resource.RLIM_INFINITY and hard < count:
            raise InputError(f"--batch needs about {count} open files but this system allows "
                             f"{hard}; raise the limit (ulimit -n) or use a smaller batch")
        resource.setrlimit(resource.RLIMIT_NOFILE, (count, hard))


def prime_codes(path, seconds: float, config) -> np.ndarray:
    """The first ``seconds`` of an audio file as the model's codes, at its rate."""
    from reference_model.codes import encode
    from wavebench_base.audio import load_audio

    if not seconds > 0:
        raise InputError(f"--prime-seconds must be > 0, got {seconds}")
    need = int(round(seconds * config.sample_rate))
    audio = load_audio(path, config.sample_rate).audio
    if len(audio) < need:
        raise InputError(f"{len(audio) / config.sample_rate:.3f} s long, shorter than the "
                         f"{seconds:g} s asked for by --prime-seconds", path)
    return encode(audio[:need], config)


def mel_frames(path, config) -> np.ndarray:
    """Log-mel frames [n_mels, F] for copy synthesis, from an audio file or a saved ``.npy``.

    An audio file must already be at the model's rate: resampling would change what the mel
    describes, so a file at another rate is refused rather than silently converted.
    """
    path = Path(path)
    if not config.uses_mel:
        raise InputError(f"--mel-from needs a mel-conditioned model; this one has cond={config.cond!r}")
    if path.suffix.lower() == ".npy":
        if not path.is_file():
            raise InputError("mel file not found", path)
        try:
            mel = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputError(f"not a readable .npy array ({exc})", path) from None
        if mel.ndim != 2 or mel.shape[0] != config.n_mels or not np.all(np.isfinite(mel)):
            raise InputError(f"mel array has shape {mel.shape}; expected finite values of shape "
                             f"[{config.n_mels}, frames]", path)
        return mel.astype(np.float32)
    from reference_model.features import log_mel
    from wavebench_base.audio import load_audio

    loaded = load_audio(path)
    if loaded.sample_rate != config.sample_rate:
        raise InputError(f"sample rate {loaded.sample_rate} Hz, but the model's mel frames are "
                         f"at {config.sample_rate} Hz; resample the file first", path)
    if len(loaded.audio) < config.hop_length:
        raise InputError(f"shorter than one mel frame ({config.hop_length} samples)", path)
    return log_mel(loaded.audio, config)


def run_generate(out_dir, *, checkpoint=None, preset=None, seconds=None, batch=1,
                 temperature=None, prime=None, prime_seconds=1.0, mel_from=None, speaker=None,
                 sampler="auto", device="cpu", seed=0, threads=None, float64=False,
                 progress=False) -> GenerateResult:
    """Generate ``batch`` clips and write them as 16-bit WAV files ``OUT/sample_000.wav`` ...

    Parameters are those of ``wavebench generate``; ``sampler="auto"`` picks ``fused`` on the
    CPU and ``cuda-graph`` on CUDA. With ``mel_from``, the clips follow that mel (copy
    synthesis) for its whole length unless ``seconds`` is shorter. A ``generation.json`` beside
    the WAVs records the settings and the speed.

    Raises
    ------
    InputError
        Missing or foreign checkpoint, prime shorter than asked, mel at the wrong rate or
        with the wrong bands, CUDA asked for but absent, bad values.
    """
    from wavebench_base.files import atomic_write_bytes

    model, defaults = load_model(checkpoint, preset, seed)
    config = model.config
    if seconds is None and mel_from is None and defaults is not None:
        seconds = defaults.seconds
    dev = resolve_device(device)
    sampler = fastest_sampler(config, dev) if sampler == "auto" else sampler
    set_threads(threads)
    prime_c = None if prime is None else prime_codes(prime, prime_seconds, config)
    p = 0 if prime_c is None else len(prime_c)
    mel = None if mel_from is None else mel_frames(mel_from, config)
    n = _n_samples(seconds, mel, p, config)
    if config.uses_mel and mel is None:
        raise InputError("this model is mel-conditioned: pass --mel-from FILE (copy synthesis)")
    if temperature is None:
        temperature = defaults.temperature if defaults is not None else 1.0
    out_dir = Path(out_dir)
    paths = [out_dir / f"sample_{b:03d}.wav" for b in range(batch)]
    with WavStreams(paths, config.sample_rate, config) as streams:
        gen = generate(model, n, batch=batch, temperature=temperature,
                       prime=prime_c, cond=mel, speaker=speaker, seed=seed, device=dev,
                       sampler=sampler, dtype=torch.float64 if float64 else torch.float32,
                       progress=progress, callback=streams.write)
    speed = gen.codes.size / gen.seconds
    meta = {"sampler": sampler, "device": str(dev), "batch": batch, "samples": n,
            "prime_samples": p, "seed": seed, "temperature": temperature,
            "checkpoint": None if checkpoint is None else str(checkpoint), "preset": preset,
            "seconds": gen.seconds, "samples_per_s": speed, "float64": float64}
    atomic_write_bytes(out_dir / "generation.json", json.dumps(meta, indent=2).encode())
    return GenerateResult(paths, gen.codes, sampler, gen.seconds, speed)


def _n_samples(seconds, mel, prime_length: int, config) -> int:
    """Samples to generate: ``seconds`` of audio, or what the mel covers after the prime."""
    if mel is None:
        seconds = 1.0 if seconds is None else seconds
        if not seconds > 0:
            raise InputError(f"--seconds must be > 0, got {seconds}")
        return max(1, int(round(seconds * config.sample_rate)))
    covered = mel.shape[1] * config.hop_length - prime_length
    if covered < 1:
        raise InputError(f"the mel covers {mel.shape[1] * config.hop_length} samples, no more "
                         f"than the {prime_length}-sample prime")
    if seconds is None:
        return covered
    want = int(round(seconds * config.sample_rate))
    if not 0 < want <= covered:
        raise InputError(f"--seconds {seconds:g} asks for {want} samples; the mel covers "
                         f"{covered} after the prime")
    return want


def set_threads(threads) -> None:
    """Set torch's and numba's CPU threads (None keeps their defaults)."""
    if threads is None:
        return
    if threads < 1:
        raise InputError(f"--threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    try:
        import numba
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    except ImportError:
        pass
