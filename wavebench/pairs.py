"""Match generated files to reference files by relative path without extension."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wavebench_base.audio import keyed_files
from wavebench_base.errors import InputError

SHOWN = 8  # names listed in an error before "and N more"


@dataclass(frozen=True)
class Pair:
    """One utterance: its key (relative path, no extension) and its two files."""

    utterance: str
    reference: Path
    generated: Path | None = None


def listing(names) -> str:
    names = sorted(names)
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def match_pairs(reference_dir, generated_dir, *, allow_missing: bool = False):
    """Pairs of (reference, generated) files with the same key.

    Returns ``(pairs, missing, extra)``: ``missing`` are reference keys with no generated file,
    ``extra`` generated keys with no reference. Unless ``allow_missing``, either is an InputError
    that lists them.
    """
    references = keyed_files(reference_dir)
    generated = keyed_files(generated_dir)
    missing = sorted(set(references) - set(generated))
    extra = sorted(set(generated) - set(references))
    if (missing or extra) and not allow_missing:
        parts = []
        if missing:
            parts.append(f"{len(missing)} reference file(s) have no generated file: {listing(missing)}")
        if extra:
            parts.append(f"{len(extra)} generated file(s) have no reference: {listing(extra)}")
        raise InputError("file sets differ; " + "; ".join(parts) +
                         " (pass --allow-missing to score the common files)", generated_dir)
    common = sorted(set(references) & set(generated))
    if not common:
        raise InputError("no generated file matches a reference file by name", generated_dir)
    return [Pair(key, references[key], generated[key]) for key in common], missing, extra
