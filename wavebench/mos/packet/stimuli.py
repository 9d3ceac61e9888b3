"""Assemble every stimulus of a packet: rated cells, anchors, hidden reference, checks, training."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from wavebench.mos.packet.anchors import render_anchor
from wavebench.mos.packet.anonymize import anon_id
from wavebench.mos.packet.quality_checks import gold_low, tone_count_trap, woods_trial
from wavebench_base.errors import InputError


@dataclass
class Stimulus:
    """One audio file of the packet before level alignment.

    Attributes
    ----------
    anon : str
        Anonymous id (file stem for stimuli and checks).
    audio : np.ndarray [shape=(n,)], float64
        Samples at the packet rate.
    system, item, role : str
        What it is (private): condition name, item key, role (see FORMAT.md).
    source : str
        Source file it was made from.
    folder : str
        ``stimuli``, ``checks`` or ``training`` (its folder in the packet).
    native_rate : int
        Rate of the source file.
    expected : dict or None
        Expected answer for gold and trap stimuli.
    """

    anon: str
    audio: np.ndarray
    system: str
    item: str
    role: str
    source: str
    folder: str
    native_rate: int
    expected: dict | None = None


def _seed_of(text: str) -> int:
    """A stable 32-bit seed from text (noise of anchors must not depend on build order)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


class StimulusSet:
    """Build and remember stimuli by anonymous id.

    Parameters
    ----------
    secret : str
        Packet secret (for anon ids and noise seeds).
    audio : dict
        (condition, item) -> np.ndarray at the packet rate, for systems and the reference.
    sources : dict
        (condition, item) -> (source path, native rate).
    sample_rate : int
        Packet rate.
    """

    def __init__(self, secret: str, audio: dict, sources: dict, sample_rate: int):
        self.secret, self.audio, self.sources, self.rate = secret, audio, sources, sample_rate
        self.items: dict = {}

    def add(self, role: str, system: str, item: str, audio, folder: str, source_key,
            expected=None) -> str:
        """Register a stimulus (once per role, system and item) and return its anon id."""
        anon = anon_id(self.secret, role, system, item)
        if anon not in self.items:
            path, rate = self.sources[source_key]
            self.items[anon] = Stimulus(anon, np.asarray(audio, np.float64), system, item, role,
                                        str(path), folder, rate, expected)
        return anon

    def condition(self, condition: str, item: str, reference: str | None, anchors: list) -> str:
        """The rated stimulus of (condition, item): a system, the natural reference or an anchor."""
        if condition in anchors:
            if reference is None:
                raise InputError(f"anchor {condition} needs --reference natural=DIR")
            key = (reference, item)
            audio = render_anchor(condition, self.audio[key], self.rate,
                                  _seed_of(self.secret + condition + item))
            return self.add(f"anchor_{condition}", condition, item, audio, "stimuli", key)
        role = "natural" if condition == reference else "system"
        return self.add(role, condition, item, self.audio[(condition, item)], "stimuli",
                        (condition, item))

    def gold(self, kind: str, reference: str, item: str) -> str:
        """Gold-high (natural clip, expect ACR >= 4) or gold-low (degraded, expect <= 2)."""
        key = (reference, item)
        if kind == "gold_high":
            return self.add(kind, reference, item, self.audio[key], "checks", key,
                            {"min": 4, "max": 5})
        audio = gold_low(self.audio[key], self.rate, _seed_of(self.secret + "gold" + item))
        return self.add(kind, reference, item, audio, "checks", key, {"min": 1, "max": 2})

    def headphone_check(self, k: int) -> str:
        """The ``k``-th Woods antiphase trial (stereo, synthesized); the answer goes to
        ``expected``."""
        rng = np.random.default_rng(_seed_of(self.secret + f"headphone{k}"))
        audio, answer = woods_trial(self.rate, rng)
        key = ("headphone", f"woods{k}")
        self.sources.setdefault(key, ("synthesized (Woods et al. 2017)", self.rate))
        return self.add("headphone", "headphone", f"woods{k}", audio, "checks", key,
                        {"choice": str(answer)})

    def trap(self, condition: str, item: str) -> str:
        """Tone-count trap made from a hold-out clip; the count goes to ``expected``."""
        key = (condition, item)
        rng = np.random.default_rng(_seed_of(self.secret + "trap" + item))
        audio, count = tone_count_trap(self.audio[key], self.rate, rng)
        return self.add("trap", condition, item, audio, "checks", key, {"choice": str(count)})
