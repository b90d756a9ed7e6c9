"""Tests of sevi_lib.simulate.render: the published spot model, overlap, quantisation, streaming writer."""

import h5py
import numpy as np
import pytest
from scipy.special import erf

from sevi_lib.core.io import (
    DETECTED_DTYPE,
    FINAL_IMAGE_DTYPE,
    GENERATED_DTYPE,
    FrameReader,
    truth_dtype,
)
from sevi_lib.core.shells import Shells
from sevi_lib.simulate import render as render
from sevi_lib.simulate.render import (
    add_spot,
    draw_spot_params,
    render_frame,
    render_frame_float,
    spot_support,
)
from sevi_lib.simulate.files import write_test_file
from sevi_lib.simulate.settings import SimulationSettings


def direct_spot(x0, z0, A, sigma, rho):
    """Straight transcription of the published model (numpy, one spot), for comparison."""
    img = np.zeros((1024, 1024))
    h = sigma * 512 * np.sqrt(2 * np.log(A))
    px, pz = (x0 + 1) * 512, (z0 + 1) * 512
    ilo, ihi = max(int(np.floor(px - h)), 0), min(int(np.floor(px + h)), 1023)
    jlo, jhi = max(int(np.floor(pz - h)), 0), min(int(np.floor(pz + h)), 1023)
    if ilo > ihi or jlo > jhi:
        return img
    s = np.arange(5) / 5
    xs = (np.arange(ilo, ihi + 1)[:, None] + s) / 512 - 1
    zs = (np.arange(jlo, jhi + 1)[:, None] + s) / 512 - 1
    dx = xs[:, :, None, None] - x0
    dz = zs[None, None] - z0
    v = A * np.exp(-(dx**2 + dz**2 + 2 * rho * dx * dz) / (2 * sigma**2))
    img[ilo:ihi + 1, jlo:jhi + 1] = v.mean(axis=(1, 3))
    return img


def test_matches_direct_model():
    rng = np.random.default_rng(1)
    cases = [(*rng.uniform(-0.9, 0.9, 2), *(p[0] for p in draw_spot_params(1, rng))) for _ in range(4)]
    cases += [(-0.999, 0.3, 100.0, 0.015, -0.9), (0.995, 0.999, 120.0, 0.016, 1.0), (0.2, -0.1, 80.0, 0.014, -1.0)]
    for x0, z0, A, sigma, rho in cases:
        ref = direct_spot(x0, z0, A, sigma, rho)
        got = render_frame_float([x0], [z0], [A], [sigma], [rho])
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)
        np.testing.assert_array_equal(render_frame([x0], [z0], [A], [sigma], [rho]),
                                      np.clip(np.rint(ref), 0, 255).astype(np.uint8))


def _truncated_moments(lo, hi, p0, s):
    """int_lo^hi exp(-(t - p0)^2 / 2 s^2) dt and its first moment."""
    a, b = (lo - p0) / (s * np.sqrt(2)), (hi - p0) / (s * np.sqrt(2))
    m0 = s * np.sqrt(np.pi / 2) * (erf(b) - erf(a))
    m1 = p0 * m0 + s * s * (np.exp(-((lo - p0) / s) ** 2 / 2) - np.exp(-((hi - p0) / s) ** 2 / 2))
    return m0, m1


@pytest.mark.parametrize("A, tol_int, tol_px", [(100.0, 1e-4, 5e-3), (1e6, 1e-8, 1e-5)])
def test_single_spot_integral_and_centroid(A, tol_int, tol_px):
    # Integral: A times the Gaussian's integral over the pixel-aligned support (analytic, erf).
    # Centroid (pixel centres at i + 0.5): the truncated Gaussian's mean + 0.1 px, because a pixel
    # samples the spot at offsets 0..0.8 (mean 0.4), 0.1 px below its centre. The tolerances are
    # the left-endpoint Riemann-sum error on the 0.2 px sub-grid, ~ 0.1 px x edge value / total.
    rng = np.random.default_rng(4)
    sigma = 0.015
    s = sigma * 512
    centres = np.arange(1024) + 0.5
    for x0, z0 in rng.uniform(-0.6, 0.6, (4, 2)):
        img = render_frame_float([x0], [z0], [A], [sigma], [0.0])
        (ilo, ihi), (jlo, jhi) = spot_support(x0, A, sigma), spot_support(z0, A, sigma)
        mx0, mx1 = _truncated_moments(ilo, ihi + 1, (x0 + 1) * 512, s)
        mz0, mz1 = _truncated_moments(jlo, jhi + 1, (z0 + 1) * 512, s)
        total = img.sum()
        assert abs(total / (A * mx0 * mz0) - 1) < tol_int
        cx = img.sum(axis=1) @ centres / total
        cz = img.sum(axis=0) @ centres / total
        assert abs(cx - (mx1 / mx0 + 0.1)) < tol_px
        assert abs(cz - (mz1 / mz0 + 0.1)) < tol_px
        if A > 1e5:  # negligible truncation: the centroid is the true position + 0.1 px
            assert abs(cx - (x0 + 1) * 512 - 0.1) < tol_px
            # and the integral is 2 pi s^2 A
            assert abs(total / (2 * np.pi * s * s * A) - 1) < 1e-6


def test_correlated_spot_integral():
    # A 2D Gaussian with precision (1/s^2) [[1, rho], [rho, 1]] integrates to 2 pi s^2 / sqrt(1 - rho^2)
    for rho in (-0.3, 0.25):
        img = render_frame_float([0.1], [-0.2], [1e6], [0.015], [rho])
        s = 0.015 * 512
        assert abs(img.sum() / (2 * np.pi * s * s * 1e6 / np.sqrt(1 - rho**2)) - 1) < 1e-6


def test_support_is_pixel_aligned_square():
    x0, z0, A, sigma = 0.1234, -0.4321, 100.0, 0.015
    img = render_frame_float([x0], [z0], [A], [sigma], [0.2])
    (ilo, ihi), (jlo, jhi) = spot_support(x0, A, sigma), spot_support(z0, A, sigma)
    nz = np.argwhere(img > 0)
    assert nz[:, 0].min() == ilo and nz[:, 0].max() == ihi
    assert nz[:, 1].min() == jlo and nz[:, 1].max() == jhi
    h = sigma * 512 * np.sqrt(2 * np.log(A))
    assert ilo == np.floor((x0 + 1) * 512 - h) and ihi == np.floor((x0 + 1) * 512 + h)
    # amplitude below 1: the spot is nowhere >= 1 and adds nothing
    assert render_frame_float([0.0], [0.0], [0.5], [sigma], [0.0]).sum() == 0


def test_overlapping_spots_add_and_saturate():
    x = np.array([0.1, 0.102, -0.5])
    z = np.array([0.2, 0.199, 0.5])
    A, sigma, rho = np.array([100.0, 90.0, 110.0]), np.array([0.015, 0.014, 0.016]), np.array([0.0, 0.1, -0.2])
    both = render_frame_float(x, z, A, sigma, rho)
    parts = sum(render_frame_float(x[k:k + 1], z[k:k + 1], A[k:k + 1], sigma[k:k + 1], rho[k:k + 1]) for k in range(3))
    np.testing.assert_allclose(both, parts, rtol=1e-14, atol=1e-12)
    frame = render_frame(x, z, A, sigma, rho)
    assert frame.dtype == np.uint8 and frame.shape == (1024, 1024)
    np.testing.assert_array_equal(frame, np.clip(np.rint(both), 0, 255).astype(np.uint8))
    three = render_frame([0.3] * 3, [0.3] * 3, [100.0] * 3, [0.015] * 3, [0.0] * 3)
    assert three.max() == 255  # three spots on top of each other saturate
    # background is exactly zero
    assert render_frame([], [], [], [], []).sum() == 0


def test_add_spot_accumulates():
    acc = np.full((1024, 1024), 2.0)
    add_spot(acc, 0.0, 0.0, 100.0, 0.015, 0.0)
    np.testing.assert_allclose(acc - 2.0, render_frame_float([0.0], [0.0], [100.0], [0.015], [0.0]), atol=1e-12)


def test_draw_spot_params_distributions():
    n = 200_000
    A, sigma, rho = draw_spot_params(n, np.random.default_rng(0))
    assert np.all(A >= 0) and np.all(np.abs(rho) <= 1)
    for v, mean, sd in ((A, 100, 10), (sigma, 0.015, 0.001), (rho, 0, 0.1)):
        assert abs(v.mean() - mean) < 5 * sd / np.sqrt(n)
        assert abs(v.std() / sd - 1) < 5 / np.sqrt(2 * n)
    # the clipping itself
    A, _, rho = draw_spot_params(10_000, np.random.default_rng(1))
    assert A.dtype == np.float64 and rho.dtype == np.float64


# ----------------------------------------------------------------------------- writer
SHELLS = Shells([0.5, 0.8], [0.007, 0.008], [[1.0, 0.85, 0.55, 0.25], [-0.3, 0.05, 0.0, 0.0]])


def _read_all(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}


def test_write_test_file_layout_and_chunk_independence(tmp_path):
    kw = dict(n_frames=6, electrons_per_shell=[6, 4], detection_loss=0.1, seed=12)
    info = write_test_file(tmp_path / "a.h5", tmp_path / "ta.h5", SHELLS, SimulationSettings(chunk=4, **kw),
                           include_images_in_truth=True, progress=False)
    write_test_file(tmp_path / "b.h5", tmp_path / "tb.h5", SHELLS, SimulationSettings(chunk=1, **kw), progress=False)
    a, b = _read_all(tmp_path / "a.h5"), _read_all(tmp_path / "b.h5")
    ta, tb = _read_all(tmp_path / "ta.h5"), _read_all(tmp_path / "tb.h5")
    assert set(a) == {"FinalImage"} and a["FinalImage"].dtype == FINAL_IMAGE_DTYPE
    assert np.array_equal(a["FinalImage"], b["FinalImage"])
    assert set(ta) == {"Truth", "GeneratedElectrons", "DetectedElectrons", "FinalImage"}
    assert set(tb) == {"Truth", "GeneratedElectrons", "DetectedElectrons"}
    assert np.array_equal(ta["FinalImage"], a["FinalImage"])
    for k in ("Truth", "GeneratedElectrons", "DetectedElectrons"):
        assert np.array_equal(ta[k], tb[k]), k
    assert ta["Truth"].dtype == truth_dtype(4) and ta["GeneratedElectrons"].dtype == GENERATED_DTYPE
    assert ta["DetectedElectrons"].dtype == DETECTED_DTYPE
    np.testing.assert_array_equal(ta["Truth"]["R"], SHELLS.R)
    assert info["n_detected"] == len(ta["DetectedElectrons"])
    with h5py.File(tmp_path / "a.h5", "r") as f:
        ds = f["FinalImage"]
        assert ds.compression == "gzip" and ds.compression_opts == 9
    with FrameReader(tmp_path / "a.h5") as r:
        ids, frames = r.read(0, 6)
    np.testing.assert_array_equal(ids, np.arange(6))
    # every detected electron lights its own pixel (the spot peak is ~A >= ~60 there)
    det = ta["DetectedElectrons"]
    ix = np.floor((det["x"] + 1) * 512).astype(int)
    iz = np.floor((det["z"] + 1) * 512).astype(int)
    assert np.all(frames[det["ImageId"], ix, iz] > 30)
    # no leftovers beside the outputs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5", "b.h5", "ta.h5", "tb.h5"]


def test_write_test_file_leaves_nothing_on_failure(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = render.render_chunk

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(render, "render_chunk", failing)
    with pytest.raises(RuntimeError):
        write_test_file(tmp_path / "f.h5", tmp_path / "t.h5", SHELLS,
                        SimulationSettings(n_frames=4, electrons_per_shell=3, chunk=2), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_iter_rendered_chunks_is_the_file_content_and_chunk_independent(tmp_path):
    shells = Shells([0.4, 0.7], [0.01, 0.01], [[1.0, 0.3], [-0.2, 0.0]])
    kw = dict(n_frames=5, electrons_per_shell=[6, 4], detection_loss=0.1, seed=9)
    write_test_file(tmp_path / "f.h5", tmp_path / "t.h5", shells, SimulationSettings(chunk=2, **kw), progress=False)
    with h5py.File(tmp_path / "f.h5") as f:
        stored = f["FinalImage"][()]
    for chunk in (1, 3, 5):
        ids, frames, n_det = [], [], 0
        for i, fr, ch in render.iter_rendered_chunks(shells, SimulationSettings(chunk=chunk, **kw)):
            assert i.dtype == np.int32 and fr.shape == (len(i), 1024, 1024) and ch.n_frames == len(i)
            ids.append(i.copy())
            frames.append(fr.copy())
            n_det += len(ch.detected)
        np.testing.assert_array_equal(np.concatenate(ids), stored["ImageId"])
        np.testing.assert_array_equal(np.concatenate(frames), stored["Image"])
        with h5py.File(tmp_path / "t.h5") as f:
            assert n_det == f["DetectedElectrons"].shape[0]
