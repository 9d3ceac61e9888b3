"""Anonymous ids, the packet secret and the key's canonical bytes (listening-test.md 6)."""
from __future__ import annotations

import base64
import hashlib
import json


def _b32(data: bytes, n: int) -> str:
    """First ``n`` characters of the lowercase base32 of ``data`` (letters and digits 2-7)."""
    return base64.b32encode(data).decode("ascii").lower()[:n]


def packet_secret(seed: int, source_hashes: list) -> str:
    """The packet secret: reproducible from the seed and the inputs, not from the seed alone.

    Parameters
    ----------
    seed : int
    source_hashes : list of str
        sha256 of every source file, in a fixed (sorted) order.
    """
    text = f"wavebench-mos:{seed}:" + "".join(source_hashes)
    return hashlib.sha256(text.encode()).hexdigest()


def packet_id(secret: str) -> str:
    """Public packet id: ``p`` + 8 base32 characters derived from the secret."""
    return "p" + _b32(hashlib.sha256(b"packet-id" + secret.encode()).digest(), 8)


def anon_id(secret: str, role: str, system: str, item: str) -> str:
    """``base32(sha256(secret || role || system || item))[:10]``, lowercase (NUL-separated)."""
    text = "\0".join([secret, role, system, item])
    return _b32(hashlib.sha256(text.encode()).digest(), 10)


def trial_id(secret: str, list_id: str, position: int) -> str:
    """Opaque trial id, unique in the packet: ``t`` + 10 base32 characters."""
    text = "\0".join([secret, "trial", list_id, str(position)])
    return "t" + _b32(hashlib.sha256(text.encode()).digest(), 10)


def key_bytes(key: dict) -> bytes:
    """The canonical bytes of ``private/key.json`` (sorted keys, one-space indent, newline)."""
    return (json.dumps(key, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()
