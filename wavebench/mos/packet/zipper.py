"""A reproducible zip of a folder: sorted entries, fixed dates and permissions."""
from __future__ import annotations

import zipfile
from pathlib import Path

from wavebench_base.files import atomic_path

_FIXED_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date zip can store: no build time leaks


def write_zip(path, folder, prefix: str) -> Path:
    """Zip ``folder`` into ``path`` with entries ``prefix/<relative path>``, byte-reproducibly.

    Parameters
    ----------
    path : str or Path
        The zip file (written atomically).
    folder : str or Path
        Folder whose files (recursively) go in.
    prefix : str
        Top folder name inside the zip.
    """
    folder = Path(folder)
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for file in sorted(p for p in folder.rglob("*") if p.is_file()):
                info = zipfile.ZipInfo(f"{prefix}/{file.relative_to(folder).as_posix()}",
                                       date_time=_FIXED_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, file.read_bytes())
    return Path(path)
