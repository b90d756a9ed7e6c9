"""The spot model measured by the camera survey (sevi_lib.detect.spotmodel), on simulated cameras.

Frames are rendered by the project's renderer with the spot parameters drawn from a known model
(published, and a lab camera of other width and a broad gamma gain, with read noise); the survey
must recover the model within its standard errors (plus a small stated allowance), pick the model
detection uses, and say when a fixed model contradicts the frames.
"""

import math

import numpy as np
import pytest
from scipy import ndimage

from sevi_lib.core.spots import SpotModel
from sevi_lib.detect.camera import SPOT_FRAMES_MAX, spot_frames, survey_frames
from sevi_lib.detect.settings import DetectorParams, SurveySettings, kernel_params, spot_detector_params
from sevi_lib.detect.spotfit import n_electrons
from sevi_lib.detect.spotmodel import fit_gain, fit_spots, isolated_spots, measure_spot_model
from sevi_lib.simulate.render import draw_spot_params, render_frame, render_frame_float

LAB = SpotModel(sigma_px=5.0, sigma_sd_px=0.3, rho_sd=0.1, gain="gamma", gain_mean=120.0, gain_cv=0.45)


def _frames(model, n_frames, n_e, seed, read_noise=0.0):
    """Frames of `n_e` electrons uniform on a disc of radius 0.8, spots drawn from `model`."""
    rng = np.random.default_rng(seed)
    out = np.empty((n_frames, 1024, 1024), np.uint8)
    for f in range(n_frames):
        r = 0.8 * np.sqrt(rng.uniform(size=n_e))
        t = rng.uniform(0, 2 * np.pi, n_e)
        A, s, rho = draw_spot_params(n_e, rng, model)
        if read_noise:
            acc = render_frame_float(r * np.cos(t), r * np.sin(t), A, s, rho)
            acc += read_noise * rng.standard_normal(acc.shape)
            out[f] = np.clip(np.rint(acc), 0, 255).astype(np.uint8)
        else:
            out[f] = render_frame(r * np.cos(t), r * np.sin(t), A, s, rho)
    return out


def test_single_spots_fit_exactly():
    # one spot per frame, saturated or not: position, width and gain (corrected for the sub-grid)
    for A, s in ((100.0, 7.68), (250.0, 5.0), (400.0, 9.5)):
        x0, z0 = 0.1234, -0.2345
        f = render_frame([x0], [z0], [A], [s / 512], [0.05])
        patches, corners, s0 = isolated_spots(f[None], 10)
        assert len(patches) == 1
        r = fit_spots(patches, 0.0, 255.0, 0.4, width0=s0)[0]
        assert abs(r[0] - ((x0 + 1) * 512 - corners[0, 1])) < 0.01
        assert abs(r[1] - ((z0 + 1) * 512 - corners[0, 2])) < 0.01
        s_true = math.sqrt(r[3] ** 2 - 0.08)
        assert abs(s_true - s) < 0.01 * s
        assert abs(r[2] * r[3] ** 2 / s_true**2 - A) < 0.01 * A
        assert abs(r[4] - 0.05) < 0.005


def test_gain_law_recovered_from_truncated_gamma():
    rng = np.random.default_rng(3)
    k, mean = 1 / 0.6**2, 90.0
    A = rng.gamma(k, mean / k, 4000)
    g = fit_gain(A, floor=20.0)  # about 5 % of the gains lie below the floor
    assert abs(g["mean"] - mean) < 4 * g["mean_se"]
    assert abs(g["cv"] - 0.6) < 4 * g["cv_se"]
    assert g["p"] > 1e-4
    # a law that is no gamma (two narrow peaks) is flagged by the histogram test
    B = np.concatenate([rng.normal(60, 3, 2000), rng.normal(160, 5, 2000)])
    assert fit_gain(B, floor=20.0)["p"] < 1e-6


@pytest.mark.parametrize("model, noise, seed", [(SpotModel(), 0.0, 1), (LAB, 0.0, 2),
                                                (SpotModel(4.0, 0.4, 0.05, "gamma", 80.0, 0.7), 1.5, 3)])
def test_survey_recovers_the_spot_model(model, noise, seed):
    sv = survey_frames(_frames(model, 24, 80, seed, noise))
    m = sv.spot
    assert m is not None and m["n_spots"] > 300
    # within 4 standard errors, plus 1 % (width) and 3 % (gain: unresolved pairs among the
    # isolated spots raise it by about their fraction); the published normal law's cv as a
    # gamma's within 15 %
    assert abs(m["sigma_px"] - model.sigma_px) < 4 * m["sigma_px_se"] + 0.01 * model.sigma_px
    assert abs(m["sigma_sd_px"] - model.sigma_sd_px) < 4 * m["sigma_sd_px_se"] + 0.02 * model.sigma_px
    assert abs(m["rho_sd"] - model.rho_sd) < 4 * m["rho_sd_se"] + 0.01
    assert abs(m["gain_mean"] - model.gain_mean) < 4 * m["gain_mean_se"] + 0.03 * model.gain_mean
    assert abs(m["gain_cv"] - model.gain_cv) < 4 * m["gain_cv_se"] + 0.15 * model.gain_cv
    assert 0.9 < m["fit_chi2"] < 1.2
    if model.is_published():  # consistent with the published model: its exact values are used
        assert sv.spot_model_source == "published" and sv.spots() == SpotModel()
        assert sv.detector_params() == DetectorParams()
        assert not sv.warnings
    else:
        assert sv.spot_model_source == "measured"
        assert abs(sv.spots().sigma_px - model.sigma_px) < 0.05 * model.sigma_px
        assert not sv.warnings
        p = sv.detector_params()
        assert p.sigma_px == pytest.approx(sv.spots().sigma_px) and p.amplitude == pytest.approx(sv.spots().gain_mean)


def test_spot_model_from_chunks_is_the_model_from_the_whole_sample():
    frames = _frames(LAB, 24, 80, 7)
    whole = measure_spot_model(frames, threshold=10.0)
    chunked = measure_spot_model(iter([frames[:16], frames[16:20], frames[20:]]), threshold=10.0)
    assert whole.n_frames == chunked.n_frames == 24
    assert chunked.to_dict() == whole.to_dict()


def _reference():
    """bench_survey's whole-frame scipy.ndimage search (the code the kernels replaced): the oracle."""
    import importlib.util
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[2] / "benchmarks"
    sys.path.insert(0, str(bench))  # bench_survey imports bench_cameras
    try:
        spec = importlib.util.spec_from_file_location("bench_survey", bench / "bench_survey.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(bench))
    return mod.reference_isolated_spots


@pytest.mark.parametrize("read_noise, join_px", [(0.0, 0), (1.5, 2)])
def test_isolated_spots_are_those_of_the_whole_frame_search(read_noise, join_px):
    """The kernels find the spots the scipy.ndimage search found, with the same patches, except
    pixels equidistant from lit pixels of two blobs (left out now)."""
    frames = _frames(LAB, 6, 80, 11, read_noise=read_noise)
    rng = np.random.default_rng(2)
    mask = np.zeros((1024, 1024), bool)
    mask[rng.integers(100, 900, 40), rng.integers(100, 900, 40)] = True
    got = isolated_spots(frames, 12.0, mask=mask, join_px=join_px)
    want = _reference()(frames, 12.0, mask=mask, join_px=join_px)
    assert len(got[1]) > 100 and np.array_equal(got[1], want[1]) and got[2] == want[2]
    both = np.isfinite(got[0]) & np.isfinite(want[0])
    assert np.array_equal(got[0][both], want[0][both])
    assert not np.any(np.isnan(want[0]) & ~np.isnan(got[0]))  # every pixel left out before is left out
    h = (got[0].shape[1] - 1) // 2
    for k, a, b in np.argwhere(np.isnan(got[0]) & ~np.isnan(want[0])):  # the rest: ties
        fi, i0, j0 = got[1][k]
        lit = (frames[fi] >= 12.0) & ~mask
        lab = ndimage.label(ndimage.binary_dilation(lit, np.ones((3, 3), bool), iterations=join_px) if join_px else lit,
                            np.ones((3, 3), bool))[0] * lit
        li, lj = np.nonzero(lit)
        d2 = (li - i0 - a) ** 2 + (lj - j0 - b) ** 2
        nearest = set(lab[li, lj][d2 == d2.min()])
        assert len(nearest) == 2 and lab[i0 + h, j0 + h] in nearest, (k, a, b)


def test_spot_model_does_not_depend_on_the_threads():
    """Chunks searched in parallel give the serial answer, also where `max_spots` cuts a chunk short."""
    frames = _frames(LAB, 24, 80, 7)

    def chunks():
        return (frames[i: i + 3] for i in range(0, 24, 3))

    serial = measure_spot_model(chunks(), threshold=10.0)
    assert measure_spot_model(chunks(), threshold=10.0, threads=3).to_dict() == serial.to_dict()
    cut = measure_spot_model(chunks(), threshold=10.0, max_spots=250)
    assert cut.n_spots < serial.n_spots and cut.n_frames == 24  # the cut falls inside a chunk
    assert measure_spot_model(chunks(), threshold=10.0, max_spots=250, threads=4).to_dict() == cut.to_dict()
    settings = SurveySettings(n_sample=8, spot_fraction=0.5)  # the survey: spot model and pile-up prior alike
    assert survey_frames(frames, settings, threads=3) == survey_frames(frames, settings)


def test_spot_sample_grows_with_the_file():
    s = SurveySettings()
    assert [spot_frames(n, s) for n in (30, 3000, 10000, 50000, 10**6)] == [30, 64, 200, SPOT_FRAMES_MAX, SPOT_FRAMES_MAX]
    assert spot_frames(10000, SurveySettings(spot_fraction=0.0)) == 64
    frames = _frames(LAB, 40, 80, 8)
    few = survey_frames(frames, SurveySettings(n_sample=8, spot_fraction=0.0))
    more = survey_frames(frames, SurveySettings(n_sample=8, spot_fraction=0.5))
    assert len(few.frames_sampled) == len(more.frames_sampled) == 8  # noise and pile-up: the same 8 frames
    assert few.spot["n_frames"] == 8 and more.spot["n_frames"] == 20
    assert more.spot["n_spots"] > 2 * few.spot["n_spots"]
    assert more.spot["gain_mean_se"] < 0.75 * few.spot["gain_mean_se"]
    assert abs(more.spot["gain_mean"] - LAB.gain_mean) < 4 * more.spot["gain_mean_se"] + 0.03 * LAB.gain_mean
    assert any("isolated spots of 20 frames" in line for line in more.summary_lines())


def test_sparse_frames_measured_from_the_larger_sample():
    """Too few isolated spots in the first sample: the larger one measures the model."""
    frames = _frames(LAB, 12, 5, 9)
    first = survey_frames(frames, SurveySettings(n_sample=2, spot_fraction=0.0))
    assert first.spot is None and first.spot_model_source == "published" and first.warnings
    more = survey_frames(frames, SurveySettings(n_sample=2, spot_fraction=1.0))
    assert more.spot is not None and more.spot["n_frames"] == 12 and more.spot_model_source == "measured"
    assert not any("not measured" in w for w in more.warnings)


def test_fixed_model_that_the_frames_contradict_is_reported():
    frames = _frames(LAB, 16, 80, 5)
    sv = survey_frames(frames, SurveySettings(spot_model="published"))
    assert sv.spot_model_source == "published" and sv.spots() == SpotModel()
    text = " ".join(sv.warnings)
    assert "spot width" in text and "gain cv" in text
    assert any(line.startswith("WARNING:") for line in sv.summary_lines())
    # the right model given by hand: no warning
    given = SurveySettings(spot_model='{"sigma_px": 5.0, "sigma_sd_px": 0.3, "gain": "gamma", "gain_mean": 120, '
                                      '"gain_cv": 0.45}')
    sv = survey_frames(frames, given)
    assert sv.spot_model_source == "given" and not sv.warnings
    with pytest.raises(ValueError):
        SurveySettings(spot_model="wide").validate()


def test_survey_round_trips_through_json():
    from sevi_lib.detect.camera import CameraSurvey

    sv = survey_frames(_frames(LAB, 8, 60, 6))
    back = CameraSurvey.from_dict(sv.to_dict())
    assert back.spots() == sv.spots() and back.warnings == sv.warnings and back.spot == sv.spot


def test_electron_count_follows_the_gain_law():
    pub = kernel_params(DetectorParams())
    # the published law (cv 0.1): boundaries near 1.5 and 2.5 mean spots, as rounding
    assert [n_electrons(a, pub) for a in (60.0, 140.0, 160.0, 240.0, 270.0)] == [1, 1, 2, 2, 3]
    # a broad law (cv 0.45): a single electron twice as bright as the mean is still one; the
    # fraction of single electrons counted as two is 1.6 % with the default pileup_odds 0.1
    # (rounding: 14 %)
    broad = kernel_params(DetectorParams(gain_cv=0.45))
    assert n_electrons(200.0, broad) == 1
    rng = np.random.default_rng(0)
    k = 1 / 0.45**2
    one = rng.gamma(k, 100 / k, 20000)
    assert np.mean([n_electrons(a, broad) > 1 for a in one]) < 0.02
    assert np.mean(np.rint(one / 100) > 1) > 0.1
    # three electrons' light is more than one
    three = rng.gamma(3 * k, 100 / k, 2000)
    assert np.mean([n_electrons(a, broad) for a in three]) > 1.5


def test_detector_params_scale_with_the_model():
    assert spot_detector_params(SpotModel()) == DetectorParams()
    p = spot_detector_params(LAB).validate()
    assert p.sigma_px == 5.0 and p.amplitude == 120.0 and p.gain_cv == 0.45
    assert p.merge_px == pytest.approx(3.0 * 5.0 / 7.68)
    assert p.single_max_peak <= 254 and p.single_max_flux > DetectorParams().single_max_flux
    assert p.peak_min == DetectorParams().peak_min  # cv 0.45: 5 % of the gains lie above 30 counts
    broad = spot_detector_params(SpotModel(4.0, 0.4, 0.05, "gamma", 80.0, 0.7)).validate()
    assert DetectorParams().threshold <= broad.peak_min < 20 and broad.min_amplitude <= broad.peak_min + 1


@pytest.mark.parametrize("model", [LAB, SpotModel(4.0, 0.4, 0.05, "gamma", 80.0, 0.7),
                                   SpotModel(9.5, 0.5, 0.05, "gamma", 180.0, 0.3),
                                   SpotModel(8.0, 0.4, 0.05, "gamma", 60.0, 0.3)])
def test_detector_params_are_made_once(model):
    # a detection shard makes the parameters for its camera and hands them, with the camera, to
    # the detector, which makes them again: the second time must change nothing (it used to scale
    # merge_px, removal_cost and single_max_peak twice: 0.65^2 instead of 0.65 for a 5 px camera)
    once = spot_detector_params(model)
    assert spot_detector_params(model, once) == once
    assert spot_detector_params(model, spot_detector_params(model, once)) == once
    tuned = DetectorParams(merge_px=2.5, removal_cost=1500.0)  # a user's own values for the published spot
    assert spot_detector_params(model, spot_detector_params(model, tuned)) == spot_detector_params(model, tuned)


def test_spot_model_pulls():
    # 12 frames of 576 isolated spots on a grid (a gamma camera): the survey's standard errors are
    # honest. Over 30 seeds the pulls had means -0.13..0.34 and spreads 0.87..1.07; with 12, a
    # mean's own spread is 0.29 and a spread's about 0.2
    rng0 = np.random.default_rng(11)
    pulls = []
    g = np.arange(40, 1000, 40)
    for seed in range(12):
        rng = np.random.default_rng([seed, 11])
        X, Z = (v.ravel() + rng0.uniform(0, 1, v.size) for v in np.meshgrid(g, g, indexing="ij"))
        A, s, rho = draw_spot_params(X.size, rng, LAB)
        m = measure_spot_model(render_frame(X / 512 - 1, Z / 512 - 1, A, s, rho)[None], threshold=10)
        pulls.append([(m.sigma_px - LAB.sigma_px) / m.sigma_px_se, (m.sigma_sd_px - LAB.sigma_sd_px) / m.sigma_sd_px_se,
                      (m.rho_sd - LAB.rho_sd) / m.rho_sd_se, (m.gain_mean - LAB.gain_mean) / m.gain_mean_se,
                      (m.gain_cv - LAB.gain_cv) / m.gain_cv_se])
    p = np.array(pulls)
    assert np.all(np.abs(p.mean(axis=0)) < 0.9), p.mean(axis=0)
    assert np.all((p.std(axis=0, ddof=1) > 0.5) & (p.std(axis=0, ddof=1) < 1.6)), p.std(axis=0, ddof=1)


def test_detected_gains_checked_against_the_law_in_use():
    from sevi_lib.detect.blobs import FrameDetector
    from sevi_lib.detect.camera import detected_gain_check

    frames = _frames(LAB, 8, 80, 3)
    out = {}
    for fixed in (None, "published"):
        sv = survey_frames(frames, SurveySettings(spot_model=fixed) if fixed else None)
        with FrameDetector(None, threads=2, camera=sv) as det:
            found = det.process(np.arange(len(frames), dtype=np.int32), frames)
        out[fixed] = detected_gain_check(found, sv)
    assert out[None]["warning"] is None and out[None]["tv"] < 0.1
    assert out["published"]["tv"] > 0.4 and "do not follow the gain law" in out["published"]["warning"]


def test_isolated_spots_under_noise_do_not_lean_bright():
    # spots 80 px apart (10 widths: each is alone), faint (peak 30) and bright (90) alternating,
    # read noise 1 count: noise lifts single pixels at a spot's edge above the threshold, more at
    # the shallow edge of a faint spot; counted as other blobs near it they rejected 64 of the 144
    # faint spots and 13 of the 144 bright ones. Joined (join_px, as the survey does under noise)
    # 142 and 144 are chosen; the faint ones may be chosen at most 5 % less often
    rng = np.random.default_rng(4)
    g = np.arange(40.0, 1000.0, 80.0)
    X, Z = (v.ravel() for v in np.meshgrid(g, g, indexing="ij"))
    A = np.where(np.arange(X.size) % 2 == 0, 30.0, 90.0)
    frames = np.empty((2, 1024, 1024), np.uint8)
    for f in range(2):
        x, z = X + rng.uniform(-1, 1, X.size), Z + rng.uniform(-1, 1, X.size)
        acc = render_frame_float(x / 512 - 1, z / 512 - 1, A, np.full(X.size, 8.0 / 512), np.zeros(X.size))
        frames[f] = np.clip(np.rint(acc + rng.standard_normal(acc.shape)), 0, 255)

    def chosen(join_px):
        patches, _, _ = isolated_spots(frames, 10, join_px=join_px)
        h = patches.shape[1] // 2
        peak = np.nanmax(patches[:, h - 2:h + 3, h - 2:h + 3], axis=(1, 2))
        return np.count_nonzero(peak < 60), np.count_nonzero(peak >= 60)

    faint, bright = chosen(2)
    assert bright >= 0.97 * 144 and faint >= bright - 0.05 * 144
    faint0, bright0 = chosen(0)  # the plain 8-connected blobs: the bias this guards against
    assert faint0 < bright0 - 0.1 * 144


def test_published_spots_under_read_noise_fit_the_gain_law():
    # published spots (normal gain, cv 0.1) with read noise 1.5: a pair of electrons 2-4 px apart
    # fits one round spot with a residual below CHI2_CUT times the noise's but many of its
    # standard deviations above it; kept, such pairs (gain ~1.8) made cv 0.124 and a gain
    # histogram of p 1e-9 (a false "no gamma law" warning). The spread-based cut drops them
    sv = survey_frames(_frames(SpotModel(), 12, 80, 7, 1.5))
    m = sv.spot
    assert m is not None and m["n_spots"] > 250
    assert abs(m["gain_cv"] - 0.1) < 4 * m["gain_cv_se"]
    assert abs(m["gain_mean"] - 100.0) < 4 * m["gain_mean_se"] + 0.01 * 100.0
    assert not any("gamma law" in w for w in sv.warnings)
    assert sv.spot_model_source == "published"


def _noisy_frames(A_draw, n_frames, n_e, seed, halo=0.0, read_noise=1.5):
    """Frames of published-width spots of gains `A_draw(rng, n)`, with a concentric halo (twice the
    width, `halo` times the peak) when `halo` > 0, and read noise."""
    rng = np.random.default_rng(seed)
    out = np.empty((n_frames, 1024, 1024), np.uint8)
    for f in range(n_frames):
        r = 0.8 * np.sqrt(rng.uniform(size=n_e))
        t = rng.uniform(0, 2 * np.pi, n_e)
        x, z = r * np.cos(t), r * np.sin(t)
        A = A_draw(rng, n_e)
        s = np.full(n_e, 7.68 / 512)
        if halo:
            x, z, A, s = (np.concatenate([v, v]) for v in (x, z, A, s))
            A[n_e:] *= halo
            s[n_e:] *= 2.0
        acc = render_frame_float(x, z, A, s, np.zeros(x.size))
        out[f] = np.clip(np.rint(acc + read_noise * rng.standard_normal(acc.shape)), 0, 255)
    return out


def test_contradicting_gains_and_shapes_still_warned_under_read_noise():
    # the residual cut drops spots far from the others' fit, not those of a gain law or a shape
    # that every spot shares: two narrow gain peaks, and spots with a halo, under read noise 1.5
    def bimodal(rng, n):
        return np.where(rng.uniform(size=n) < 0.5, rng.normal(60.0, 3.0, n), rng.normal(160.0, 5.0, n))

    sv = survey_frames(_noisy_frames(bimodal, 12, 80, 8))
    assert any("fit no gamma law" in w for w in sv.warnings)
    sv = survey_frames(_noisy_frames(lambda rng, n: rng.normal(100.0, 10.0, n), 12, 80, 9, halo=0.3))
    assert any("not Gaussian spots" in w for w in sv.warnings)
