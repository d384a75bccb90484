"""Files that appear whole or not at all (shared by the simulator, training and prediction)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(final: str | Path, *, suffix: str = ".part"):
    """Yield a temporary path beside ``final``; on success it is renamed to ``final``.

    On any exception, Ctrl-C included, the temporary file is removed, so an
    interrupted writer never leaves a partial ``final`` behind. The temporary
    file has a hidden name in the same folder (so the rename is atomic) and
    ends with the mode an ordinary new file gets (``mkstemp`` makes it private).
    ``suffix`` matters to writers that check the extension (Keras wants ``.keras``).
    """
    final = Path(final)
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
