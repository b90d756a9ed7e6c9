"""Property test: a damaged frames file ends in the right frames or one InputError, never anything else.

A small ``FinalImage`` file (the project's own layout: one gzip chunk per frame) is copied a few
hundred times with random damage (bytes flipped anywhere, the file cut at a random offset, the
chunk index (the v1 B-tree nodes) overwritten). Each copy is read whole by
:class:`~sevi_lib.core.io.FrameReader` in a forked child with a time limit, so a crash or a hang
is caught too. Allowed outcomes: the frames the file declares, equal to the original's (damage in
bytes nobody reads), or an :class:`~sevi_lib.core.errors.InputError` whose message is one line
naming the file (which the ``sevi`` command prints as one ``sevi: error:`` line).
"""

import multiprocessing
import traceback

import numpy as np
import pytest

from sevi_lib.core import io
from sevi_lib.core.errors import InputError
from sevi_lib.core.geometry import N_PIX

N_CASES = 300
TIME_LIMIT = 20.0  # seconds per case (a healthy read takes milliseconds)


def _frames(n, seed):
    rng = np.random.default_rng(seed)
    frames = np.zeros((n, N_PIX, N_PIX), dtype=np.uint8)
    for k in range(n):
        for _ in range(5):
            i, j = rng.integers(20, N_PIX - 20, 2)
            frames[k, i - 3:i + 4, j - 3:j + 4] = rng.integers(1, 255, (7, 7))
    return frames


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "frames.h5"
    frames = _frames(4, 1)
    ids = np.arange(10, 14, dtype=np.int32)
    with io.FrameWriter(path, 4) as w:
        w.write(ids, frames)
    return path.read_bytes(), ids, frames


def _damage(data, rng):
    """One randomly damaged copy and a description of the damage."""
    data = bytearray(data)
    kind = ["flip", "flip", "truncate", "index"][rng.integers(4)]
    if kind == "flip":
        where = rng.integers(0, len(data), rng.integers(1, 9))
        for w in where:
            data[w] ^= int(rng.integers(1, 256))
        return bytes(data), f"flip at {sorted(where.tolist())}"
    if kind == "truncate":
        cut = int(rng.integers(0, len(data)))
        return bytes(data[:cut]), f"truncate at {cut}"
    trees = [i for i in range(len(data) - 4) if data[i:i + 4] == b"TREE"]
    t = trees[rng.integers(len(trees))]
    start = t + int(rng.integers(4, 120))
    n = int(rng.integers(1, 16))
    data[start:start + n] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    return bytes(data), f"chunk index at {start}..{start + n}"


def _read_all(path, conn):
    try:
        with io.FrameReader(path) as r:
            ids, frames = r.read(0, r.n_frames)
        conn.send(("ok", ids, frames))
    except InputError as exc:
        conn.send(("input_error", str(exc)))
    except BaseException:
        conn.send(("other", traceback.format_exc()))
    finally:
        conn.close()


def _outcome(path):
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_read_all, args=(path, child))
    proc.start()
    child.close()
    got = parent.recv() if parent.poll(TIME_LIMIT) else ("hang",)
    proc.join(1.0)
    if proc.is_alive():
        proc.kill()
        proc.join()
    if got == ("hang",) and proc.exitcode not in (None, 0):
        got = ("crash", proc.exitcode)
    return got


def test_damaged_frame_files_end_in_frames_or_one_input_error(tmp_path, original):
    data, ids, frames = original
    rng = np.random.default_rng(20261201)
    outcomes = {"ok": 0, "input_error": 0}
    for case in range(N_CASES):
        damaged, what = _damage(data, rng)
        path = tmp_path / f"case{case}.h5"
        path.write_bytes(damaged)
        got = _outcome(path)
        assert got[0] in outcomes, f"case {case} ({what}): {got}"
        if got[0] == "ok":
            _, got_ids, got_frames = got
            n = len(got_ids)
            assert n <= len(ids), f"case {case} ({what}): {n} frames"
            np.testing.assert_array_equal(got_ids, ids[:n], err_msg=f"case {case} ({what})")
            assert np.array_equal(got_frames, frames[:n]), f"case {case} ({what}): wrong frames"
        else:
            message = got[1]
            assert message.startswith(f"{path}: ") and "\n" not in message, f"case {case} ({what}): {message!r}"
            assert "no dataset 'FinalImage' (found: FinalImage)" not in message, f"case {case} ({what})"
        outcomes[got[0]] += 1
        path.unlink()
    assert outcomes["input_error"] > N_CASES // 3  # the damage is real, not all in unread bytes
