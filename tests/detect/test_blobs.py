"""Tests of sevi_lib.detect.blobs (the frame detector) on frames rendered with the published model.

Accuracy is measured on 200 frames of 80 electrons (40 per shell, no detection loss) drawn from
the peaked angular distributions of the default config (the original data's mean betas), radii
0.5 and 0.8. Electrons match detections one to one (Hungarian assignment) within 3 px. With
about 16000 electrons the standard error of an overall recall or precision near 0.975 is about
0.0012 and in the dense region (about a third of the electrons) about 0.003, so the required
0.97 and 0.90 are many standard errors away from the values this detector reaches (about
0.985 overall, 0.97 dense) but a real regression fails.
"""

import numpy as np
import pytest

from sevi_lib.core.geometry import N_PIX, PIX_PER_UNIT
from sevi_lib.core.shells import Shells
from sevi_lib.detect.blobs import (
    ELECTRON_DTYPE,
    DetectorParams,
    FrameDetector,
    detect_frame,
)
from sevi_lib.detect.match import match_electrons
from sevi_lib.simulate.electrons import sample_shell, simulate_electrons
from sevi_lib.simulate.render import draw_spot_params, render_frame
from sevi_lib.simulate.settings import SimulationSettings

#: Mean betas of the original data (reference; the default config's simulated distributions).
PEAKED = [1.0, 0.85, 0.55, 0.25, 0.1, 0.04, 0.015, 0.002, 0.004, 0.0, 0.0, 0.0]
SHELLS = Shells([0.5, 0.8], [0.0075, 0.0075], [PEAKED, PEAKED])
N_FRAMES = 200
MATCH_PX = 3.0


def render_frames(x, z, frame_ids, n_frames, seed):
    """Render frames of the given electrons with published-model spot parameters."""
    rng = np.random.default_rng(seed)
    frames = np.empty((n_frames, N_PIX, N_PIX), dtype=np.uint8)
    for f in range(n_frames):
        sel = frame_ids == f
        A, s, rho = draw_spot_params(int(sel.sum()), rng)
        render_frame(x[sel], z[sel], A, s, rho, out=frames[f])
    return frames


@pytest.fixture(scope="module")
def peaked_run():
    """200 rendered frames, their true electrons and the detector's output."""
    sim = simulate_electrons(SHELLS, SimulationSettings(n_frames=N_FRAMES, electrons_per_shell=[40, 40],
                                                    detection_loss=0.0, seed=11))
    truth = sim.detected
    frames = render_frames(truth["x"], truth["z"], truth["ImageId"], N_FRAMES, seed=12)
    det = FrameDetector(threads=1)
    found = det.process(np.arange(N_FRAMES, dtype=np.int32), frames)
    return truth, frames, found, det


@pytest.fixture(scope="module")
def dense_cells():
    """Cells (16 px) holding the densest 5 % of the area reached by electrons."""
    cell = 16
    xs, zs = [], []
    for j in range(2):
        _, _, x, z = sample_shell(SHELLS.R[j], SHELLS.sigma_R[j], np.asarray(SHELLS.beta[j]), 200_000, 100 + j)
        xs.append(x)
        zs.append(z)
    H, _, _ = np.histogram2d(np.concatenate(xs), np.concatenate(zs), bins=N_PIX // cell, range=[[-1, 1], [-1, 1]])
    occupied = np.sort(H[H > 0])[::-1]
    level = occupied[int(np.ceil(0.05 * occupied.size)) - 1]
    return cell, H >= level


def in_cells(x, z, cells):
    cell, mask = cells
    i = np.clip(((x + 1) * PIX_PER_UNIT // cell).astype(int), 0, mask.shape[0] - 1)
    j = np.clip(((z + 1) * PIX_PER_UNIT // cell).astype(int), 0, mask.shape[1] - 1)
    return mask[i, j]


def tally(truth, found, cells=None):
    """Matched/total truth and matched/total detections over all frames (optionally in cells)."""
    n = np.zeros(4)
    for f in range(N_FRAMES):
        t = truth[truth["ImageId"] == f]
        d = found[found["ImageId"] == f]
        mt, md, _ = match_electrons(t["x"], t["z"], d["x"], d["z"])
        if cells is not None:
            it = in_cells(t["x"], t["z"], cells)
            idd = in_cells(d["x"], d["z"], cells)
            mt, md = mt[it], md[idd]
        n += [mt.sum(), mt.size, md.sum(), md.size]
    return n[0] / n[1], n[2] / n[3], n


@pytest.mark.slow  # shares the 200-frame peaked_run fixture (10-30 s)
def test_recall_precision_overall(peaked_run):
    truth, _, found, _ = peaked_run
    recall, precision, _ = tally(truth, found)
    assert recall >= 0.97, recall
    assert precision >= 0.97, precision


@pytest.mark.slow  # shares the 200-frame peaked_run fixture (10-30 s)
def test_recall_precision_densest_area(peaked_run, dense_cells):
    truth, _, found, _ = peaked_run
    recall, precision, n = tally(truth, found, dense_cells)
    assert n[1] > 3000  # the dense 5 % of the area holds a large share of the electrons
    assert recall >= 0.90, recall
    assert precision >= 0.90, precision


@pytest.mark.slow  # shares the 200-frame peaked_run fixture (10-30 s)
def test_total_count_within_2_percent(peaked_run):
    truth, _, found, det = peaked_run
    assert abs(found.size / truth.size - 1) <= 0.02
    assert det.n_frames == N_FRAMES
    hist = det.blob_hist
    assert (hist * np.arange(hist.size)).sum() == found.size  # blobs by multiplicity add up
    assert np.isclose(det.count_map.sum(), found.size)


@pytest.mark.slow  # shares the 200-frame peaked_run fixture (10-30 s)
def test_intensity_sum_is_plain_sum(peaked_run):
    _, frames, _, det = peaked_run
    np.testing.assert_array_equal(det.intensity_sum(), frames.sum(axis=0, dtype=np.float64))


def test_intensity_sum_of_sparse_and_dense_frames():
    """The raw-frame sum is taken in the blob scan's pass, which skips all-zero 8-pixel words:
    single lit pixels at every position within a word, lit pixels in the first and last
    columns, a blob, and a frame lit everywhere (read noise) all add exactly."""
    rng = np.random.default_rng(11)
    frames = np.zeros((3, N_PIX, N_PIX), dtype=np.uint8)
    rows = rng.integers(0, N_PIX, 600)
    frames[0, rows, np.arange(600) % N_PIX] = rng.integers(1, 256, 600)  # every offset in a word
    frames[0, :, 0] = 3
    frames[0, :, N_PIX - 1] = 5
    frames[1, 500:520, 300:330] = 120  # one blob (fitted), the rest empty
    frames[2] = rng.integers(0, 12, (N_PIX, N_PIX))  # lit everywhere, blobs of noise at the threshold
    with FrameDetector() as det:
        det.process([0, 1, 2], frames)
        np.testing.assert_array_equal(det.intensity_sum(), frames.sum(axis=0, dtype=np.float64))


def test_isolated_spots_position_error():
    """Well separated spots: RMS error <= 0.5 px (reached: ~0.02 px) and no systematic offset."""
    rng = np.random.default_rng(3)
    xs, zs, fid = [], [], []
    g = (np.arange(-6, 7) * 70.0 + 0.5) / PIX_PER_UNIT  # 13 x 13 grid, 70 px apart
    gx, gz = np.meshgrid(g, g, indexing="ij")
    for f in range(3):
        xs.append(gx.ravel() + rng.uniform(-2, 2, gx.size) / PIX_PER_UNIT)
        zs.append(gz.ravel() + rng.uniform(-2, 2, gz.size) / PIX_PER_UNIT)
        fid.append(np.full(gx.size, f))
    x, z, fid = np.concatenate(xs), np.concatenate(zs), np.concatenate(fid)
    frames = render_frames(x, z, fid, 3, seed=4)
    found = FrameDetector().process(np.arange(3), frames)
    assert found.size == x.size
    assert np.all(found["blob_size"] == 1)
    err = []
    for f in range(3):
        t = fid == f
        d = found[found["ImageId"] == f]
        mt, _, (r, c) = match_electrons(x[t], z[t], d["x"], d["z"])
        assert mt.all()
        err.append(np.c_[d["x"][c] - x[t][r], d["z"][c] - z[t][r]] * PIX_PER_UNIT)
    err = np.concatenate(err)
    rms = np.sqrt((err ** 2).sum(axis=1).mean())
    assert rms <= 0.5
    # the -0.1 px sub-grid shift is corrected: the mean error is far below it (SE ~ 0.002 px)
    assert np.all(np.abs(err.mean(axis=0)) < 0.03), err.mean(axis=0)


def _one_frame(x_px, z_px, A, sigma=0.015, rho=0.0):
    x = np.asarray(x_px, float) / PIX_PER_UNIT - 1
    z = np.asarray(z_px, float) / PIX_PER_UNIT - 1
    n = x.size
    return render_frame(x, z, np.full(n, A, float), np.full(n, sigma), np.full(n, rho))


@pytest.mark.parametrize("sep", [0.0, 1.0])
def test_coincident_pair_counts_two(sep):
    frame = _one_frame([300.3, 300.3 + sep], [600.7, 600.7], 100.0)
    found = detect_frame(frame)
    assert found.size == 2
    assert np.all(found["blob_size"] == 2)
    d = np.hypot(found["x"] * PIX_PER_UNIT + PIX_PER_UNIT - 300.3 - sep / 2,
                 found["z"] * PIX_PER_UNIT + PIX_PER_UNIT - 600.7)
    assert np.all(d < MATCH_PX)


def test_resolved_pair_positions():
    frame = _one_frame([400.0, 409.0], [500.0, 503.0], 100.0)
    found = detect_frame(frame)
    mt, md, _ = match_electrons(np.array([400.0, 409.0]) / PIX_PER_UNIT - 1,
                                np.array([500.0, 503.0]) / PIX_PER_UNIT - 1, found["x"], found["z"], tol_px=1.0)
    assert mt.all() and md.all()


def test_saturated_triple_counts_three():
    frame = _one_frame([512.2, 514.0, 511.0], [700.5, 701.5, 703.0], 100.0)
    assert frame.max() == 255
    found = detect_frame(frame)
    assert found.size == 3
    assert np.all(found["blob_size"] == 3)


def test_spot_at_frame_edge_found():
    frame = _one_frame([2.0], [512.0], 100.0)
    found = detect_frame(frame)
    assert found.size == 1
    assert abs(found["x"][0] * PIX_PER_UNIT + PIX_PER_UNIT - 2.0) < 1.0


def test_empty_and_faint_frames():
    assert detect_frame(np.zeros((N_PIX, N_PIX), np.uint8)).size == 0
    faint = np.zeros((N_PIX, N_PIX), np.uint8)
    faint[100:110, 100:110] = 20  # below peak_min: not an electron
    assert detect_frame(faint).size == 0
    assert detect_frame(faint).dtype == ELECTRON_DTYPE


def test_bad_frames_rejected():
    with pytest.raises(ValueError, match="uint8"):
        detect_frame(np.zeros((N_PIX, N_PIX), np.uint16))
    with pytest.raises(ValueError, match="shape"):
        detect_frame(np.zeros((512, 512), np.uint8))


@pytest.mark.slow  # shares the 200-frame peaked_run fixture (10-30 s)
def test_threads_give_identical_results(peaked_run):
    _, frames, found, _ = peaked_run
    with FrameDetector(threads=2) as det:
        again = det.process(np.arange(12), frames[:12])
    np.testing.assert_array_equal(again, found[found["ImageId"] < 12])


def test_params_from_config_and_validation():
    p = DetectorParams.from_config({"threshold": 12, "shards": 10, "threads": 2})
    assert p.threshold == 12
    with pytest.raises(ValueError, match="peak_min"):
        DetectorParams(threshold=50, peak_min=40).validate()
