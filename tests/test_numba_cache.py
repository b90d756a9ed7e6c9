"""sevi_lib._numba_cache: an edit of a kernel in one file reaches its callers in other files."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import sevi_lib._numba_cache as numba_cache

CALLER = """
from numba import njit
from pkg.callee import g

@njit(cache=True)
def f(x):
    return g(x) * 10
"""


def _package(tmp_path, increment):
    pkg = tmp_path / "pkg"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(f"""
        import importlib.util, pathlib
        spec = importlib.util.spec_from_file_location("_nc", {str(Path(numba_cache.__file__))!r})
        _nc = importlib.util.module_from_spec(spec); spec.loader.exec_module(_nc)
        _nc.configure(pathlib.Path(__file__).parent)
    """))
    (pkg / "caller.py").write_text(CALLER)
    (pkg / "callee.py").write_text(f"from numba import njit\n\n@njit(cache=True)\ndef g(x):\n    return x + {increment}\n")


def _run(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(PYTHONPATH=str(tmp_path), SEVI_NUMBA_CACHE=str(tmp_path / "cache"))
    code = "import os, pkg.caller as c; print(c.f(1), os.environ['NUMBA_CACHE_DIR'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    value, folder = out.split()
    return int(value), Path(folder)


def test_edited_callee_in_another_file_reaches_the_cached_caller(tmp_path):
    _package(tmp_path, 1)
    assert _run(tmp_path)[0] == 20
    value, first = _run(tmp_path)  # served from the cache
    assert value == 20 and any(first.rglob("*.nbi"))
    _package(tmp_path, 2)  # only the callee's file changes
    value, second = _run(tmp_path)
    assert value == 30
    assert second != first and second.parent == first.parent


def test_source_hash_follows_the_compiled_code_only_and_user_setting_wins(tmp_path, monkeypatch):
    """The hash changes with a kernel module's code or with a module it imports (constants), not
    with docstrings, comments or modules that no kernel module reaches."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "consts.py").write_text('"""Constants."""\nK = 1\n')
    (pkg / "kern.py").write_text('"""Kernels."""\nfrom numba import njit\n\nfrom pkg.consts import K\n\n\n'
                                 '@njit(cache=True)\ndef f(x):\n    return x + K\n')
    (pkg / "sub" / "cli.py").write_text("def main():\n    return 0\n")
    index = {}
    base = numba_cache.source_hash(pkg, index)
    assert set(index) == {"__init__.py", "consts.py", "kern.py", "sub/cli.py"}

    def edited(name, text):
        old = (pkg / name).read_text()
        (pkg / name).write_text(text)
        try:
            return numba_cache.source_hash(pkg, index), numba_cache.source_hash(pkg)  # cached and fresh
        finally:
            (pkg / name).write_text(old)

    assert edited("sub/cli.py", "def main():\n    return 1\n") == (base, base)  # reached by no kernel
    assert edited("kern.py", (pkg / "kern.py").read_text().replace('"""Kernels."""', '"""Other words."""')
                  + "# a comment\n") == (base, base)
    changed = edited("consts.py", '"""Constants."""\nK = 2\n')
    assert changed[0] == changed[1] != base  # a constant the kernel freezes at compile time
    changed = edited("kern.py", (pkg / "kern.py").read_text().replace("x + K", "x - K"))
    assert changed[0] == changed[1] != base
    assert numba_cache.source_hash(pkg, index) == base
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    assert numba_cache.configure(pkg) is None
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "mine")


def test_old_cache_folders_are_pruned(tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("SEVI_NUMBA_CACHE", str(tmp_path / "root"))
    stale = time.time() - numba_cache.PRUNE_AFTER_S - 60
    for k in range(numba_cache.KEEP + 3):
        (tmp_path / "root" / f"old{k}").mkdir(parents=True)
        os.utime(tmp_path / "root" / f"old{k}", (stale - k, stale - k))
    (tmp_path / "root" / "in_use").mkdir()  # another process's version, used a minute ago
    os.utime(tmp_path / "root" / "in_use", (time.time() - 60, time.time() - 60))
    folder = numba_cache.configure(tmp_path)
    kept = sorted(p.name for p in (tmp_path / "root").iterdir())
    # the KEEP most recent others stay (the folder in use among them) and the stale rest go
    assert kept == sorted([folder.name, "in_use"] + [f"old{k}" for k in range(numba_cache.KEEP - 1)])


def test_recently_used_folders_are_not_pruned(tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("SEVI_NUMBA_CACHE", str(tmp_path / "root"))
    for k in range(numba_cache.KEEP + 3):
        (tmp_path / "root" / f"recent{k}").mkdir(parents=True)
    folder = numba_cache.configure(tmp_path)
    assert len(list((tmp_path / "root").iterdir())) == numba_cache.KEEP + 4
    assert folder.is_dir()
