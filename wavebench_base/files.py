"""Files and folders that are never half-written: atomic writes, folder swaps, locks, stale temporaries.

A single file is written to a temporary sibling and renamed onto its name
(:func:`atomic_write_bytes`, :func:`atomic_path`), so a reader sees the old file or the whole new
one. Every command that writes a set of files (a prepared store, a report, an analysis, a MOS packet)
builds the set in a hidden temporary folder beside its destination and swaps it in at the end.
Readers then see the old complete set or the new complete set, never a mix; a run killed at any
moment leaves only a temporary folder, which the next run removes once its owner is dead.

Temporary names carry the owner's process id, ``.NAME.tmp-<pid>-<hex>``, so that "no live process
owns it" can be decided without a lock server.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import re
import shutil
import time
import uuid
from pathlib import Path

from wavebench_base.errors import InputError

_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100
# Temporary names written before they carried a pid: removed once this old (no owner to ask).
_UNOWNED_AGE_S = 24 * 3600


def _absolute(path) -> Path:
    """``path`` made absolute, so that ``.`` and ``..`` have a name and a parent."""
    return Path(os.path.abspath(path))


def temp_sibling(path, kind: str = "tmp", suffix: str = "") -> Path:
    """A hidden name beside ``path`` owned by this process: ``.NAME.<kind>-<pid>-<hex><suffix>``.

    ``suffix`` keeps an extension at the end for writers that pick a format from it.
    """
    path = _absolute(path)
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}")


def _owner_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clear_stale(path) -> list[Path]:
    """Remove the temporary and backup-in-flight siblings of ``path`` that no live process owns.

    Parameters
    ----------
    path : str or Path
        The destination whose ``.NAME.tmp-*`` and ``.NAME.old-*`` siblings are examined.

    Returns
    -------
    list of Path
        What was removed.
    """
    path = _absolute(path)
    return _clear(path.parent, re.escape(path.name))


def clear_stale_in(folder) -> list[Path]:
    """Remove every temporary or backup-in-flight entry in ``folder`` that no live process owns.

    For a folder that many atomic writes share (a training run's checkpoints), where a kill
    can leave ``.last.pt.tmp-<pid>-*.pt`` behind; see :func:`clear_stale`.
    """
    return _clear(_absolute(folder), ".+")


def _clear(parent: Path, name: str) -> list[Path]:
    """Remove ``parent``'s ``.<name>.tmp|old-[<pid>-]<hex>[suffix]`` entries of dead owners.

    An entry without a pid (written before names carried one) is removed once it is a day old.
    """
    if not parent.is_dir():
        return []
    pattern = re.compile(rf"^\.{name}\.(tmp|old)-(?:(\d+)-)?[0-9a-f]+(\..*)?$")
    removed = []
    for entry in parent.iterdir():
        match = pattern.match(entry.name)
        if not match:
            continue
        pid = match.group(2)
        if pid is not None:
            if int(pid) == os.getpid() or _owner_alive(int(pid)):
                continue
        else:
            with contextlib.suppress(OSError):
                if time.time() - entry.lstat().st_mtime < _UNOWNED_AGE_S:
                    continue
        remove_path(entry)
        removed.append(entry)
    return removed


def remove_path(path: Path) -> None:
    """Delete a file or folder tree if it exists (cleanup must not raise over the real error)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths with Linux's renameat2(RENAME_EXCHANGE); False if unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):  # old kernel or file system
        return False
    raise OSError(err, os.strerror(err), str(b))


def swap_in(tmp, dest) -> None:
    """Put the finished folder ``tmp`` at ``dest``, replacing what was there in one step.

    Where the kernel supports it the two folders are exchanged atomically, so every reader sees
    the old complete set or the new one. Elsewhere the old folder is renamed aside first (a
    crash between the two renames leaves it whole under ``.NAME.old-<pid>-*``).

    Parameters
    ----------
    tmp : str or Path
        The new folder, on the same file system as ``dest``.
    dest : str or Path
        Destination; an existing folder there is replaced (and deleted). A caller that must
        keep it makes its backup before the swap: moving the old set after the swap would
        leave it, for a moment, under a temporary name that a later run clears.
    """
    tmp, dest = _absolute(tmp), _absolute(dest)
    if not dest.exists() and not dest.is_symlink():
        os.replace(tmp, dest)
        return
    if not dest.is_dir() or dest.is_symlink():
        raise InputError("exists and is not a folder; choose another output", dest)
    if _exchange(tmp, dest):
        old = tmp  # after the exchange, tmp holds the old set
    else:
        old = temp_sibling(dest, "old")
        os.replace(dest, old)
        os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def building(dest):
    """Yield an empty temporary folder beside ``dest``; swap it in if the block succeeds.

    Stale temporary siblings of ``dest`` left by killed runs are removed first. On an exception
    the temporary folder is removed and ``dest`` is untouched.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     with building(Path(folder) / "report") as tmp:
    ...         size = (tmp / "results.csv").write_text("system,mcd")
    ...     print([p.name for p in Path(folder).iterdir()],
    ...           [p.name for p in (Path(folder) / "report").iterdir()])
    ['report'] ['results.csv']
    """
    dest = _absolute(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    clear_stale(dest)
    tmp = temp_sibling(dest)
    tmp.mkdir()
    try:
        yield tmp
        swap_in(tmp, dest)
    except BaseException:
        remove_path(tmp)
        raise


@contextlib.contextmanager
def locked(dest, what: str = "output folder"):
    """Hold an exclusive lock on ``dest`` for the block; refuse at once if another run holds it.

    The lock is ``.NAME.lock`` beside ``dest`` (so it survives ``dest`` being swapped) and is an
    ``flock``: the kernel releases it when its process dies, so a killed run never leaves a lock
    that blocks the next one.

    Raises
    ------
    InputError
        Another live process holds the lock.
    """
    dest = _absolute(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    lock_path = dest.with_name(f".{dest.name}.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            raise InputError(f"is in use by another run (pid {owner}); wait for it to finish "
                             f"or choose another {what}", dest) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary name carries this process's id and keeps ``path``'s suffix
    (``.name.wav.tmp-<pid>-<hex>.wav``), so that writers that pick a format from the extension
    still work and a later run can remove what a killed one left (:func:`clear_stale`).
    On an exception the temporary file (or folder) is removed and ``path`` is left as it was.
    Parent folders are created.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     with atomic_path(Path(folder) / "out" / "table.csv") as tmp:
    ...         size = tmp.write_text("system,mcd")
    ...     print(sorted(p.name for p in (Path(folder) / "out").iterdir()))
    ['table.csv']
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path, suffix=path.suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        remove_path(tmp)
        raise


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(path, text: str) -> Path:
    """Write UTF-8 ``text`` atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))
