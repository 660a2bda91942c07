"""File modes for what Quorum writes: the user's umask, as for any file they create.

Files are written to a temporary name and renamed into place, and ``tempfile`` makes those
private (0600, or 0700 for a directory) whatever the umask; once complete they get the mode a
plain ``open`` or ``mkdir`` would have given.
"""

import os
from pathlib import Path


def _umask() -> int:
    # NOTE: the umask can only be read by setting it; this puts it straight back.
    current = os.umask(0o022)
    os.umask(current)
    return current


def as_created(path: Path | str, *, directory: bool = False) -> None:
    """Give ``path`` (and, for a directory, everything inside it) the umask's mode."""
    mask = _umask()
    os.chmod(path, 0o777 & ~mask if directory else 0o666 & ~mask)
    if directory:
        for root, folders, files in os.walk(path):
            for name in folders:
                os.chmod(os.path.join(root, name), 0o777 & ~mask)
            for name in files:
                os.chmod(os.path.join(root, name), 0o666 & ~mask)
