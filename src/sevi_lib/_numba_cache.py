"""Numba caches that cannot go stale, and that survive edits that change no kernel.

Numba keys a cached kernel by the file that defines it (its path and modification time). A kernel
that calls a kernel of another file is therefore not recompiled when only the callee's file
changes, and a kernel that reads a constant of another module keeps the old value: the cache would
silently run old code. sevi avoids this by giving every version of its compiled code its own cache
folder: :func:`configure` points ``NUMBA_CACHE_DIR`` at ``<cache root>/<hash>``, where the hash
(:func:`source_hash`) covers the modules that import numba and every module of the package they
import (transitively, function-local imports included), each as its syntax tree without
docstrings and comments. An edit of such code starts from an empty cache (compiling once, about a
minute for the whole pipeline); an edit anywhere else (the command line, the report, a docstring or
comment anywhere) reuses the cache (numba itself still recompiles the kernels of a kernel file
whose modification time changed). The cache root is ``$SEVI_NUMBA_CACHE`` or
``$XDG_CACHE_HOME/sevi/numba`` (default ``~/.cache/sevi/numba``); the newest few folders are kept,
older ones are removed. A user who sets ``NUMBA_CACHE_DIR`` themselves keeps full control (then
this module does nothing, and ``rm -rf "$NUMBA_CACHE_DIR"`` clears stale entries).
"""

import ast
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

#: cache folders of other source versions kept besides the current one
KEEP = 3
#: A folder used (configured or written to) this recently is never pruned, even beyond KEEP:
#: another process of an older or newer sevi (a workflow still running while the package is
#: edited or upgraded) may be loading or saving kernels there.
PRUNE_AFTER_S = 86400.0

#: file in the cache root remembering each source file's digest and imports by its stamp
INDEX = "sources.json"


def _module_name(root, path):
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([root.name, *parts])


def _imports(tree, name, is_package):
    """Absolute names of the modules `tree` (module `name`) imports, function-local ones included."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.add(module)
            out.update(f"{module}.{alias.name}" for alias in node.names)
    return out


def _without_docstrings(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _file_info(path, name):
    """(digest of the syntax tree without docstrings, modules imported, whether it imports numba)."""
    source = path.read_bytes()
    try:
        tree = ast.parse(source)
    except SyntaxError:  # hashed as text; Python reports the error on import
        return hashlib.sha256(source).hexdigest(), [], False
    imported = _imports(tree, name, path.name == "__init__.py")
    digest = hashlib.sha256(ast.dump(_without_docstrings(tree)).encode()).hexdigest()
    return digest, sorted(imported), any(i == "numba" or i.startswith("numba.") for i in imported)


def source_hash(package_dir, index=None):
    """Hex digest of the code numba compiles from the package below `package_dir`.

    The modules that import numba and, transitively, every module of the package they import,
    each hashed as its relative path and its syntax tree without docstrings (comments and layout
    are not in the tree).

    Parameters
    ----------
    package_dir : path
    index : dict, optional
        Per-file results of earlier calls, keyed by relative path, with the file's modification
        time and size (parsing every file costs about a second; a stat costs microseconds).
        Updated in place.
    """
    root = Path(package_dir)
    index = {} if index is None else index
    info = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        st = path.stat()
        stamp = [st.st_mtime_ns, st.st_size]
        entry = index.get(rel)
        if entry is None or entry[0] != stamp:
            entry = index[rel] = [stamp, *_file_info(path, _module_name(root, path))]
        info[_module_name(root, path)] = (rel, *entry[1:])
    for rel in set(index) - {v[0] for v in info.values()}:
        del index[rel]
    todo = [m for m, (_, _, _, numba) in info.items() if numba]
    needed = set()
    while todo:
        m = todo.pop()
        if m in needed:
            continue
        needed.add(m)
        todo.extend(i for i in info[m][2] if i in info and i not in needed)
    h = hashlib.sha256()
    for m in sorted(needed):
        rel, digest = info[m][:2]
        h.update(f"{rel}\0{digest}\0".encode())
    return h.hexdigest()[:16]


def _load_index(root):
    try:
        return json.loads((root / INDEX).read_text())
    except (OSError, ValueError):
        return {}


def _save_index(root, index):
    try:
        fd, tmp = tempfile.mkstemp(dir=root, prefix=".index.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(index, f)
        os.replace(tmp, root / INDEX)
    except OSError:
        pass


def cache_root(environ=None):
    """Folder holding one numba cache folder per source version."""
    env = os.environ if environ is None else environ
    if env.get("SEVI_NUMBA_CACHE"):
        return Path(env["SEVI_NUMBA_CACHE"])
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sevi" / "numba"


def _prune(root, current, now=None):
    """Remove the cache folders of other source versions beyond the KEEP most recent, except
    those used in the last PRUNE_AFTER_S seconds."""
    now = time.time() if now is None else now
    try:
        others = [(p.stat().st_mtime, p) for p in root.iterdir() if p.is_dir() and p.name != current]
        others.sort(key=lambda t: t[0], reverse=True)
        for mtime, old in others[KEEP:]:
            if now - mtime > PRUNE_AFTER_S:
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
    index = _load_index(root)
    before = json.dumps(index, sort_keys=True)
    digest = source_hash(package_dir, index)
    folder = root / digest
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.utime(folder)
    except OSError:
        return None
    if json.dumps(index, sort_keys=True) != before:
        _save_index(root, index)
    os.environ["NUMBA_CACHE_DIR"] = str(folder)
    numba_config = sys.modules.get("numba.core.config")
    if numba_config is not None:  # numba already imported: its config read the variable already
        numba_config.CACHE_DIR = str(folder)
    _prune(root, digest)
    return folder
