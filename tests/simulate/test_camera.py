"""Tests of the simulator's lab camera (issue 13): centre offset, stray electrons, read noise, hot pixels.

The published camera (every default) must give the same files as before: the digests below were
computed with the code of commit a65f7b0, before these effects existed, and none of the new
machinery may run with the defaults. Statistical tests use fixed seeds and thresholds from the
statistic's own distribution (a false-alarm probability of 1e-6 per test), not tuned to the seed.
"""

import hashlib

import h5py
import numpy as np
import pytest
from scipy import stats
from scipy.special import ndtr

from sevi_lib.core.errors import InputError
from sevi_lib.core.io import HOT_PIXEL_DTYPE, read_camera_truth, read_truth
from sevi_lib.core.shells import Shells
from sevi_lib.simulate import electrons as electrons
from sevi_lib.simulate import render as render
from sevi_lib.simulate.electrons import STRAY_SHELL, frame_seed, simulate_electrons
from sevi_lib.simulate.render import (
    camera_effects,
    hot_pixel_table,
    iter_rendered_chunks,
    quantize_noisy_into,
)
from sevi_lib.simulate.files import write_test_file
from sevi_lib.simulate.settings import SimulationSettings

ALPHA = 1e-6
Z = stats.norm.isf(ALPHA / 2)  # two-sided bound of a standard normal statistic (~4.9)

SHELLS = Shells([0.5, 0.8], [0.007, 0.008], [[1.0, 0.5], [-0.3, 0.0]])

#: sha256 over FinalImage, Truth, GeneratedElectrons and DetectedElectrons of 5 frames, chunk 2,
#: written by write_test_file of commit a65f7b0 (before the lab camera): case -> (shells, means,
#: detection loss, seed, digest).
PUBLISHED = {
    "k2": (SHELLS, [30, 20], 0.1, 7, "b9ebe834abc1b366ca8c54e18968df4c2b6d9a15fd79a4d6cc5fcc46cdff7229"),
    "k1": (Shells([0.6], [0.01], [[0.8]]), 40, 0.1, 3,
           "fd7fd145bb44b269d42f03643cb959ef0a83a0f0fa7aa205e2147bb20943d00e"),
    "k3": (Shells([0.3, 0.55, 0.85], [0.006, 0.007, 0.009], [[0.9, 0.0], [-0.4, 0.0], [0.4, 0.3]]),
           [15, 25, 20], 0.2, 11, "35df0bf7340505c8c591a32f5acf28050020360a4f8457a76b2e2ae18b6ddbd2"),
}


def _digest(frames_path, truth_path):
    h = hashlib.sha256()
    with h5py.File(frames_path) as f:
        h.update(f["FinalImage"][()].tobytes())
    with h5py.File(truth_path) as t:
        for k in ("Truth", "GeneratedElectrons", "DetectedElectrons"):
            h.update(t[k][()].tobytes())
    return h.hexdigest()


def _frames(shells, n, means, seed, chunk=8, **camera):
    settings = SimulationSettings(n_frames=n, electrons_per_shell=means, detection_loss=0.1, seed=seed, chunk=chunk,
                                  **camera)
    out = [(fr.copy(), ch) for _, fr, ch in iter_rendered_chunks(shells, settings)]
    return np.concatenate([f for f, _ in out]), electrons.concatenate_chunks([c for _, c in out])


# ------------------------------------------------------------------------------ published camera
@pytest.mark.parametrize("case", sorted(PUBLISHED))
def test_published_camera_gives_the_files_of_before(tmp_path, case):
    shells, means, loss, seed, digest = PUBLISHED[case]
    write_test_file(tmp_path / "f.h5", tmp_path / "t.h5", shells, SimulationSettings(
        n_frames=5, electrons_per_shell=means, detection_loss=loss, seed=seed, chunk=2), progress=False)
    assert _digest(tmp_path / "f.h5", tmp_path / "t.h5") == digest


def test_published_camera_runs_none_of_the_new_machinery(tmp_path, monkeypatch):
    def forbidden(*args, **kw):
        raise AssertionError("lab-camera machinery used with the published camera")

    for module, name in ((render, "render_camera_chunk"), (render, "hot_pixel_table"),
                         (electrons, "stray_electrons_table")):
        monkeypatch.setattr(module, name, forbidden)
    assert camera_effects(0.0, None) is None
    write_test_file(tmp_path / "f.h5", tmp_path / "t.h5", SHELLS, SimulationSettings(
        n_frames=3, electrons_per_shell=5, seed=2, chunk=2, centre_offset=(0, 0), stray_electrons=0.0, read_noise=0.0,
        hot_pixels=0), progress=False)
    with h5py.File(tmp_path / "t.h5") as t:
        assert "HotPixels" not in t and (t["DetectedElectrons"]["ElectronId"] >= 0).all()
    with h5py.File(tmp_path / "f.h5") as f:
        assert f["FinalImage"].compression_opts == 9  # the published files' level
    cam = read_camera_truth(tmp_path / "t.h5")
    assert cam["centre"] == (0.0, 0.0) and cam["stray_electrons"] == 0.0 and cam["read_noise"] == 0.0
    assert cam["hot_pixels"].shape == (0, 3)


def test_new_streams_never_reuse_a_published_one():
    seed = 123456789
    frames = range(20000)
    published = {frame_seed(seed, f, s) for f in frames for s in (0, 1)}
    new = {frame_seed(seed, f, s) for f in frames for s in (electrons.STREAM_STRAYS, electrons.STREAM_NOISE)}
    assert len(published) == len(new) == 2 * len(frames) and not published & new
    base = int(electrons.splitmix64(np.uint64(seed)) & np.uint64(0xFFFFFFFF))
    assert frame_seed(seed, 7, 1) == (base + 15) % 2**32  # the published formula, unchanged


def test_camera_truth_defaults_for_files_without_it(tmp_path):
    path = tmp_path / "old.h5"
    with h5py.File(path, "w") as f:
        f["Truth"] = np.zeros(1)
    cam = read_camera_truth(path)
    assert cam["centre"] == (0.0, 0.0) and cam["hot_pixels"].shape == (0, 3)
    with h5py.File(path, "a") as f:
        f.attrs["read_noise"] = -1.0
    with pytest.raises(InputError, match="read_noise"):
        read_camera_truth(path)


# --------------------------------------------------------------------------------- centre offset
def test_centre_offset_moves_every_electron_and_nothing_else():
    kw = dict(n_frames=300, electrons_per_shell=[30, 30], detection_loss=0.1, seed=4)
    a = simulate_electrons(SHELLS, SimulationSettings(**kw))
    b = simulate_electrons(SHELLS, SimulationSettings(**kw, centre_offset=(3.4, -2.7)))
    np.testing.assert_array_equal(a.generated, b.generated)
    np.testing.assert_array_equal(a.detected[["ImageId", "ElectronId"]], b.detected[["ImageId", "ElectronId"]])
    np.testing.assert_allclose(b.detected["x"] - a.detected["x"], 3.4 / 512, rtol=0, atol=1e-15)
    np.testing.assert_allclose(b.detected["z"] - a.detected["z"], -2.7 / 512, rtol=0, atol=1e-15)
    # the image centre (mean position of a symmetric image) is the offset, within its SE
    for coord, offset in (("x", 3.4), ("z", -2.7)):
        v = b.detected[coord] * 512
        assert abs(v.mean() - offset) < Z * v.std() / np.sqrt(len(v)), coord


def test_centre_offset_moves_the_rendered_image(tmp_path):
    frames, ch = _frames(SHELLS, 4, [20, 20], 3, centre_offset=(5.0, -3.0))
    ix = np.floor((ch.detected["x"] + 1) * 512).astype(int)
    iz = np.floor((ch.detected["z"] + 1) * 512).astype(int)
    assert np.all(frames[ch.detected["ImageId"], ix, iz] > 30)  # each spot where the truth says
    write_test_file(tmp_path / "f.h5", tmp_path / "t.h5", SHELLS, SimulationSettings(n_frames=2, electrons_per_shell=5, seed=3,
                                                                         centre_offset=[5, -3]), progress=False)
    assert read_camera_truth(tmp_path / "t.h5")["centre"] == (5 / 512, -3 / 512)


# ----------------------------------------------------------------------------------------- strays
def test_stray_electrons_poisson_uniform_and_marked():
    n_frames, mean = 2000, 3.0
    kw = dict(n_frames=n_frames, electrons_per_shell=[10, 10], detection_loss=0.1, seed=8)
    plain = simulate_electrons(SHELLS, SimulationSettings(**kw))
    out = simulate_electrons(SHELLS, SimulationSettings(**kw, stray_electrons=mean))
    det = out.detected
    stray = det["ElectronId"] == -1
    # the shell electrons are untouched, the strays are not generated electrons
    np.testing.assert_array_equal(det[~stray], plain.detected)
    np.testing.assert_array_equal(out.generated, plain.generated)
    np.testing.assert_array_equal(out.detected_shell[stray], STRAY_SHELL)
    np.testing.assert_array_equal(out.detected_shell[~stray], plain.detected_shell)
    # ordered by frame, offsets consistent, each frame's strays after its shell electrons
    assert np.all(np.diff(det["ImageId"]) >= 0)
    np.testing.assert_array_equal(np.diff(out.frame_offsets), np.bincount(det["ImageId"], minlength=n_frames))
    for k in (0, 1, 2, 500):
        ids = det["ElectronId"][out.frame_offsets[k]:out.frame_offsets[k + 1]]
        assert np.all(np.diff((ids == -1).astype(int)) >= 0)
    # Poisson count per frame: mean within Z SE, dispersion index near 1
    counts = np.bincount(det["ImageId"][stray], minlength=n_frames)
    assert abs(counts.mean() - mean) < Z * np.sqrt(mean / n_frames)
    assert abs(counts.var(ddof=1) / counts.mean() - 1) < Z * np.sqrt(2 / (n_frames - 1))
    # uniform on the whole screen
    for coord in ("x", "z"):
        v = det[coord][stray]
        assert v.min() >= -1 and v.max() < 1
        assert stats.kstest(v, "uniform", args=(-1, 2)).pvalue > ALPHA, coord


def test_strays_are_rendered_and_written(tmp_path):
    info = write_test_file(tmp_path / "f.h5", tmp_path / "t.h5", SHELLS,
                           SimulationSettings(n_frames=6, electrons_per_shell=2, seed=5, stray_electrons=4.0),
                           include_images_in_truth=True, progress=False)
    with h5py.File(tmp_path / "t.h5") as t:
        det = t["DetectedElectrons"][()]
        frames = t["FinalImage"]["Image"]
        assert t.attrs["stray_electrons"] == 4.0
    stray = det[det["ElectronId"] == -1]
    assert len(stray) > 0 and info["n_detected"] == len(det)
    ix = np.floor((stray["x"] + 1) * 512).astype(int)
    iz = np.floor((stray["z"] + 1) * 512).astype(int)
    assert np.all(frames[stray["ImageId"], ix, iz] > 30)


# ------------------------------------------------------------------------------------- read noise
def _rounded_normal_law(a, sd, kmax=255):
    """P(clip(rint(a + sd N), 0, 255) = k), k = 0..kmax."""
    edges = ndtr((np.arange(kmax + 1) + 0.5 - a) / sd)
    p = np.diff(np.concatenate([[0.0], edges]))
    p[-1] += 1 - edges[-1]
    return p


@pytest.mark.parametrize("a, sd", [(0.0, 1.5), (0.0, 0.4), (0.0, 40.0), (0.3, 1.5), (254.0, 1.5), (100.2, 7.0)])
def test_noisy_quantisation_has_the_rounded_clipped_normal_law(a, sd):
    cam = camera_effects(sd)
    acc = np.full((1024, 1024), a)
    out = np.empty((1024, 1024), np.uint8)
    quantize_noisy_into(acc, out, sd, cam.zero_cdf, cam.zero_guide, 17)
    assert not acc.any()  # reset for the next frame
    v = out.ravel()
    p = _rounded_normal_law(a, sd)
    k0 = int(np.clip(np.rint(a), 0, 255))  # the most likely value: its frequency within Z SE
    n = v.size
    assert abs((v == k0).mean() - p[k0]) < Z * np.sqrt(p[k0] * (1 - p[k0]) / n)
    # chi-square over values with >= 20 expected counts (the rest pooled)
    observed = np.bincount(v, minlength=256).astype(float)
    keep = p * n >= 20
    obs = np.append(observed[keep], observed[~keep].sum())
    exp = np.append(p[keep] * n, p[~keep].sum() * n)
    obs, exp = obs[exp > 0], exp[exp > 0]
    assert stats.chi2.sf(((obs - exp) ** 2 / exp).sum(), len(obs) - 1) > ALPHA


def test_read_noise_far_from_spots_and_stream_properties():
    sd = 1.5
    frames, ch = _frames(SHELLS, 6, [8, 8], 21, chunk=4, read_noise=sd)
    far = np.ones(frames.shape, bool)  # pixels more than 40 px from every electron: no spot there
    for f, x, z in zip(ch.detected["ImageId"], ch.detected["x"], ch.detected["z"]):
        i, j = int((x + 1) * 512), int((z + 1) * 512)
        far[f, max(i - 40, 0):i + 41, max(j - 40, 0):j + 41] = False
    v = frames[far]
    p0 = ndtr(0.5 / sd)  # P(rint(sd N) clipped at 0 reads 0)
    assert abs((v == 0).mean() - p0) < Z * np.sqrt(p0 * (1 - p0) / v.size)
    p1 = ndtr(1.5 / sd) - p0
    assert abs((v == 1).mean() - p1) < Z * np.sqrt(p1 * (1 - p1) / v.size)
    # independent frames; the same frames for any chunk; the spots still there
    assert (frames[0] != frames[1]).mean() > 0.3
    again, _ = _frames(SHELLS, 6, [8, 8], 21, chunk=1, read_noise=sd)
    np.testing.assert_array_equal(frames, again)
    ix = np.floor((ch.detected["x"] + 1) * 512).astype(int)
    iz = np.floor((ch.detected["z"] + 1) * 512).astype(int)
    assert np.all(frames[ch.detected["ImageId"], ix, iz] > 30)
    # the electrons (and their spots' parameters) do not depend on the noise
    _, plain = _frames(SHELLS, 6, [8, 8], 21)
    np.testing.assert_array_equal(plain.detected, ch.detected)


def test_noisy_frames_are_written_at_a_fast_gzip_level(tmp_path):
    write_test_file(tmp_path / "f.h5", tmp_path / "t.h5", SHELLS,
                    SimulationSettings(n_frames=2, electrons_per_shell=3, seed=1, read_noise=1.0), progress=False)
    with h5py.File(tmp_path / "f.h5") as f, h5py.File(tmp_path / "t.h5") as t:
        assert f["FinalImage"].compression_opts == 1 and t.attrs["read_noise"] == 1.0
    write_test_file(tmp_path / "g.h5", tmp_path / "u.h5", SHELLS,
                    SimulationSettings(n_frames=2, electrons_per_shell=3, seed=1, read_noise=1.0, gzip_level=4),
                    progress=False)
    with h5py.File(tmp_path / "f.h5") as f, h5py.File(tmp_path / "g.h5") as g:
        assert g["FinalImage"].compression_opts == 4
        np.testing.assert_array_equal(f["FinalImage"][()], g["FinalImage"][()])


# ------------------------------------------------------------------------------------- hot pixels
def test_hot_pixel_table():
    hot = hot_pixel_table(5, 500)
    assert hot.dtype == HOT_PIXEL_DTYPE and len(hot) == 500
    flat = hot["ix"].astype(int) * 1024 + hot["iz"]
    assert len(np.unique(flat)) == 500 and flat.min() >= 0 and flat.max() < 1024**2
    assert hot["level"].min() >= 64 and hot["level"].max() <= 255
    np.testing.assert_array_equal(hot, hot_pixel_table(5, 500))
    assert not np.array_equal(hot, hot_pixel_table(6, 500))
    assert stats.kstest(hot["level"], "uniform", args=(64, 191)).pvalue > ALPHA
    assert len(hot_pixel_table(5, 0)) == 0


def test_hot_pixels_lit_in_every_frame(tmp_path):
    n_hot = 30
    write_test_file(tmp_path / "f.h5", tmp_path / "t.h5", SHELLS,
                    SimulationSettings(n_frames=5, electrons_per_shell=4, seed=6, hot_pixels=n_hot),
                    include_images_in_truth=True, progress=False)
    hot = hot_pixel_table(6, n_hot)
    cam = read_camera_truth(tmp_path / "t.h5")
    np.testing.assert_array_equal(cam["hot_pixels"], np.stack([hot["ix"], hot["iz"], hot["level"]], axis=1))
    with h5py.File(tmp_path / "t.h5") as t:
        frames = t["FinalImage"]["Image"]
        np.testing.assert_array_equal(t["HotPixels"][()], hot)
    lit = frames[:, hot["ix"], hot["iz"]].astype(float)
    level = np.clip(np.rint(hot["level"]), 0, 255)
    assert np.all(lit >= level)  # spots only add
    assert np.mean(lit == level) > 0.9  # exactly the level unless a spot lands on it
    # with read noise: the level plus noise, clipped at 255
    frames, _ = _frames(SHELLS, 40, [1, 1], 6, hot_pixels=n_hot, read_noise=2.0)
    lit = frames[:, hot["ix"], hot["iz"]].astype(float)
    expected = np.array([(_rounded_normal_law(lv, 2.0) * np.arange(256)).sum() for lv in hot["level"]])
    assert np.median(np.abs(lit.mean(0) - expected)) < 1.0
    assert lit.max() <= 255


# --------------------------------------------------------------------------------------- K shells
@pytest.mark.parametrize("shells, means", [
    (Shells([0.6], [0.01], [[0.8, 0.1]]), 30),
    (Shells([0.8, 0.3, 0.55], [0.008, 0.006, 0.007], [[0.7, 0.6, 0.35], [1.2, 0.5, 0.1], [-0.6, 0.1, 0.0]]),
     [25, 30, 35]),
])
def test_k_shells_with_every_effect(tmp_path, shells, means):
    write_test_file(tmp_path / "f.h5", tmp_path / "t.h5", shells, SimulationSettings(
        n_frames=3, electrons_per_shell=means, seed=9, centre_offset=(3.4, -2.7), stray_electrons=3.0, read_noise=1.5,
        hot_pixels=12), progress=False)
    truth = read_truth(tmp_path / "t.h5")
    assert truth.n_shells == shells.n_shells and np.all(np.diff(truth.R) > 0)
    with h5py.File(tmp_path / "t.h5") as t:
        rows = t["Truth"][()]
        gen = t["GeneratedElectrons"][()]
        det = t["DetectedElectrons"][()]
    np.testing.assert_array_equal(rows["SphereId"], np.arange(shells.n_shells))
    assert set(np.unique(gen["SphereId"])) == set(range(shells.n_shells))
    assert (det["ElectronId"] == -1).any() and set(det["ElectronId"][det["ElectronId"] >= 0]) <= set(gen["ElectronId"])
    cam = read_camera_truth(tmp_path / "t.h5")
    assert cam["centre"] == (3.4 / 512, -2.7 / 512) and cam["hot_pixels"].shape == (12, 3)
    assert (cam["stray_electrons"], cam["read_noise"]) == (3.0, 1.5)


@pytest.mark.parametrize("kw, message", [
    ({"read_noise": -0.5}, "read_noise must be >= 0"),
    ({"read_noise": float("nan")}, "read_noise must be finite"),
    ({"stray_electrons": float("inf")}, "stray_electrons must be finite"),
    ({"stray_electrons": -1}, "stray_electrons must be >= 0"),
    ({"hot_pixels": -1}, "hot_pixels must be in"),
    ({"hot_pixels": 2.0}, "hot_pixels must be an integer"),
    ({"centre_offset": (1.0,)}, "centre_offset must be two numbers"),
    ({"centre_offset": "12"}, "centre_offset must be two numbers"),
    ({"centre_offset": (1.0, float("nan"))}, "centre_offset must be finite"),
    ({"gzip_level": 10}, "gzip_level"),
])
def test_library_refuses_bad_camera_values(tmp_path, kw, message):
    with pytest.raises(InputError, match=message):
        write_test_file(tmp_path / "f.h5", tmp_path / "t.h5", SHELLS,
                        SimulationSettings(n_frames=2, electrons_per_shell=3, **kw), progress=False)
    assert list(tmp_path.iterdir()) == []
