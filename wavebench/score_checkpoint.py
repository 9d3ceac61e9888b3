"""`wavebench score --checkpoint`: a model's likelihood of the references, and copy synthesis."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from tqdm.auto import tqdm

from metrics import DEFAULT_METRICS
from reference_model.checkpoint import load_checkpoint
from reference_model.features import log_mel
from reference_model.likelihood import bits_per_sample, target_log_probs
from wavebench.score import SETTINGS_FILE, read_done, score, trim_partial_line
from wavebench_base.audio import keyed_files, load_audio, save_wav
from wavebench_base.errors import InputError
from wavebench_base.fingerprint import read_fingerprint
from wavebench_base.runinfo import file_hash

NLL_FILE = "nll.jsonl"


def likelihood_record(model, system: str, key: str, audio, notes) -> dict:
    """Teacher-forced bits per sample of one reference (chunked; equals one full pass)."""
    log_probs, _ = target_log_probs(model, audio)
    return {"system": system, "utterance": key, "notes": notes,
            "rows": [{"system": system, "utterance": key, "metric": "nll_bits",
                      "value": bits_per_sample(log_probs), "status": "ok"}]}


def copy_synthesis(model, audio, *, sampler: str, seed: int, temperature: float):
    """Resynthesize a reference from its own log-mel frames."""
    from reference_model.sampling import generate
    mel = log_mel(audio, model.config)
    n = mel.shape[1] * model.config.hop_length
    speaker = 0 if model.config.uses_speaker else None
    return generate(model, n, cond=mel, speaker=speaker, sampler=sampler, seed=seed,
                    temperature=temperature).audio[0]


def score_checkpoint(checkpoint, *, reference_dir, out_dir, system=None, metrics=None,
                     oracles=(), jobs=1, sampler="auto", seed=0, temperature=1.0,
                     progress=True, log=print, force=False):
    """Score a checkpoint against reference recordings.

    Every model gets ``nll_bits`` (teacher-forced, bits per sample, lower is better). A
    mel-conditioned model also resynthesizes each reference from its own mel frames (written to
    ``OUT/generated/SYSTEM``) and the pair metrics score that copy against the reference.
    Both steps resume: finished likelihoods and generated files are kept, as long as the
    checkpoint is the one they came from (its hash is in the run's fingerprint; another
    checkpoint on the same ``out_dir`` is refused before any work). ``force`` discards them and
    starts afresh.
    """
    out_dir = Path(out_dir)
    model, payload = load_checkpoint(checkpoint)
    config = model.config
    if sampler == "auto":  # on the CPU, as copy_synthesis runs
        from reference_model.sampling import fastest_sampler, resolve_device
        sampler = fastest_sampler(config, resolve_device("cpu"))
    system = system or Path(checkpoint).stem
    names = list(metrics or DEFAULT_METRICS)
    want_nll = "nll_bits" in names or metrics is None
    pair_metrics = [m for m in names if m != "nll_bits"]
    synthesize = config.uses_mel and bool(pair_metrics)
    if pair_metrics and not config.uses_mel:
        log(f"note: {system} is not mel-conditioned: only nll_bits is scored "
            "(copy synthesis needs mel conditioning)")
    if not want_nll and not synthesize:
        raise InputError(f"nothing to score for {system}: choose --metrics nll_bits or a "
                         "mel-conditioned checkpoint", checkpoint)
    checkpoint_hash = file_hash(checkpoint)
    out_dir.mkdir(parents=True, exist_ok=True)
    nll_path = out_dir / NLL_FILE
    generated_dir = out_dir / "generated" / system
    if force:
        nll_path.unlink(missing_ok=True)
        shutil.rmtree(generated_dir, ignore_errors=True)
    else:
        _check_same_checkpoint(out_dir, checkpoint_hash, checkpoint)
    trim_partial_line(nll_path)  # a kill mid-line must not swallow the next record
    done = {utterance: record for (_, utterance), record in read_done(nll_path).items()}
    records = []
    for key, path in tqdm(sorted(keyed_files(reference_dir).items()), disable=not progress,
                          desc="checkpoint", unit="utt"):
        wav = generated_dir / f"{key}.wav"
        need_nll, need_copy = want_nll and key not in done, synthesize and not wav.exists()
        if need_nll or need_copy:
            clip = load_audio(path, config.sample_rate)
            if need_nll:
                notes = [f"{key}: reference {n}" for n in clip.notes]
                done[key] = likelihood_record(model, system, key, clip.audio, notes)
                with open(nll_path, "a") as sink:
                    sink.write(json.dumps(done[key]) + "\n")
            if need_copy:
                save_wav(wav, copy_synthesis(model, clip.audio, sampler=sampler, seed=seed,
                                             temperature=temperature), config.sample_rate)
        if want_nll:
            records.append(done[key])
    generated = {system: generated_dir} if synthesize else {}
    return score(reference_dir=reference_dir, generated=generated, out_dir=out_dir,
                 metrics=pair_metrics if (generated or oracles) else (), oracles=oracles,
                 jobs=jobs, progress=progress, log=log, extra_records=records,
                 checkpoint_hash=checkpoint_hash, force=force)


def _check_same_checkpoint(out_dir: Path, checkpoint_hash: str, checkpoint) -> None:
    """Refuse to resume likelihoods and copies made by another checkpoint (before any work)."""
    old = (read_fingerprint(out_dir / SETTINGS_FILE, "fingerprint") or {}).get("checkpoint_hash")
    if old and old != checkpoint_hash:
        raise InputError(f"holds a score run of another checkpoint (sha256 {old}, not "
                         f"{checkpoint_hash} of {checkpoint}); use --force to start afresh or "
                         f"choose another -o", out_dir)
