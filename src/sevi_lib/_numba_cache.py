"""Numba caches that cannot go stale.

Numba keys a cached kernel by the file that defines it (its path and modification time). A kernel
that calls a kernel of another file is therefore not recompiled when only the callee's file
changes: the cache would silently run the old callee. sevi avoids this by giving every version of
its source its own cache folder: :func:`configure` hashes the contents of every ``.py`` file of the
package and points ``NUMBA_CACHE_DIR`` at ``<cache root>/<hash>``, so any edit anywhere in the
package starts from an empty cache (compiling once, about a minute for the whole pipeline), and an
unchanged package reuses its cache. The cache root is ``$SEVI_NUMBA_CACHE`` or
``$XDG_CACHE_HOME/sevi/numba`` (default ``~/.cache/sevi/numba``); the newest few folders are kept,
older ones are removed. A user who sets ``NUMBA_CACHE_DIR`` themselves keeps full control (then
this module does nothing, and ``rm -rf "$NUMBA_CACHE_DIR"`` clears stale entries).
"""

import hashlib
import os
import shutil
import sys
from pathlib import Path

#: cache folders of other source versions kept besides the current one
KEEP = 3


def source_hash(package_dir):
    """Hex digest of the relative paths and contents of every ``.py`` file below `package_dir`."""
    h = hashlib.sha256()
    root = Path(package_dir)
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:16]


def cache_root(environ=None):
    """Folder holding one numba cache folder per source version."""
    env = os.environ if environ is None else environ
    if env.get("SEVI_NUMBA_CACHE"):
        return Path(env["SEVI_NUMBA_CACHE"])
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sevi" / "numba"


def _prune(root, current):
    try:
        others = [p for p in root.iterdir() if p.is_dir() and p.name != current]
        others.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        for old in others[KEEP:]:
            shutil.rmtree(old, ignore_errors=True)
    except OSError:
        pass


def configure(package_dir):
    """Point numba's cache at a folder keyed by the package's source hash (unless the user set one).

    Parameters
    ----------
    package_dir : path
        The package whose kernels are cached.

    Returns
    -------
    Path or None
        The cache folder used, or None when ``NUMBA_CACHE_DIR`` was set by the user or the cache
        root cannot be created (numba then caches beside the sources, as it does by default).
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    root = cache_root()
    digest = source_hash(package_dir)
    folder = root / digest
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.utime(folder)
    except OSError:
        return None
    os.environ["NUMBA_CACHE_DIR"] = str(folder)
    numba_config = sys.modules.get("numba.core.config")
    if numba_config is not None:  # numba already imported: its config read the variable already
        numba_config.CACHE_DIR = str(folder)
    _prune(root, digest)
    return folder
