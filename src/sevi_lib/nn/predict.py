"""The network's answer: a trained checkpoint applied to the real accumulated count map.

The real map goes through the same input view as the training shards
(:func:`sevi_lib.nn.views.apply_view`) and the network (:func:`sevi_lib.nn.inference.predict`) gives
beta_2 .. beta_2N of each of its K shells (K rows in the Answer: two for the pretrained network,
the first pass's K after fine-tuning). The map given is the network's input as is: on lab data
with an off-centre image it is the map recentred on the fitted centre (``sevi nn centre-map``,
:mod:`sevi_lib.nn.centre`), since the network is trained on screen-centred maps and does not
learn offsets. The network does not estimate radii; the ``Answer`` table's ``R`` comes either
from a first-pass answer (e.g. the fit's, which must have K rows) or from the count map itself
(:func:`radii_from_map`: the K most prominent peaks of the radial profile, where each projected
shell piles up at rho = R; when close shells merge there, the fit's shell search). :func:`predict_file` is ``sevi nn predict``: files in, validated
Answer out. torch is imported only when a network is applied.
"""

import json

import numpy as np
from scipy.signal import find_peaks

from sevi_lib.core.errors import InputError
from sevi_lib.core.io import check_outputs, read_map, write_answer, write_text
from sevi_lib.core.geometry import pixel_centres
from sevi_lib.core.maps import radial_profile
from sevi_lib.fit.search import find_shells
from sevi_lib.nn.ensemble import ensemble_answer
from sevi_lib.nn.inputs import check_prediction, read_radii
from sevi_lib.nn.synth import read_shard_attrs
from sevi_lib.nn.views import View, apply_view

#: Position of R between the radial profile's peak (0) and its steepest descent (1).
EDGE_WEIGHT = 0.6


def radii_from_map(count_map, n_shells=2, min_separation=0.03, smooth=2.0, min_prominence=0.05):
    """Shell radii from the peaks of the radial profile of a count map.

    A thin shell of radius R projects onto a disc whose radial profile rises to a peak just
    inside rho = R (the rim, where the projection piles up) and falls steeply just outside,
    whatever its angular distribution. The profile (one-pixel bins, Gaussian-smoothed by
    `smooth` bins) is searched for its `n_shells` most prominent local maxima (prominence at
    least `min_prominence` times the profile's maximum) at least `min_separation` apart; for each, the steepest descent outside it is found, and R is
    placed at ``peak + EDGE_WEIGHT * (descent - peak)``. On simulated shells (sigma_R 0.005
    to 0.0095, any beta) the peak lies 0.005-0.007 below R and the descent 0.0035-0.0055
    above it; the weighted point is within about 0.001 of R. This is a report value for the
    ``Answer`` table, not a fit.

    Parameters
    ----------
    count_map : ndarray, shape (1024, 1024)
    n_shells : int
    min_separation : float
        Minimum distance between two radii (screen units).
    smooth : float
        Standard deviation of the smoothing, in bins.
    min_prominence : float
        Smallest prominence of a peak, relative to the profile's maximum (ignores noise).

    Returns
    -------
    ndarray, shape (n_shells,)
        Ascending radii.

    When fewer than `n_shells` peaks stand `min_separation` apart (a vibrational progression has
    pairs a few sigma_R apart), the radii are those of the fit's shell search
    (:func:`sevi_lib.fit.search.find_shells`, which resolves pairs down to about 4 sigma_R) if it
    finds exactly `n_shells`: its peak positions, about one sigma_R inside R.

    Raises
    ------
    InputError
        If neither finds `n_shells` shells.
    """
    rho, prof = radial_profile(count_map)
    if smooth > 0:
        half = int(np.ceil(4 * smooth))
        k = np.exp(-0.5 * (np.arange(-half, half + 1) / smooth) ** 2)
        prof = np.convolve(prof, k / k.sum(), mode="same")
    peaks, props = find_peaks(prof, prominence=min_prominence * prof.max())
    peaks = peaks[np.argsort(props["prominences"])[::-1]]
    chosen = []
    step = rho[1] - rho[0]
    for p in peaks:
        if all(abs(rho[p] - rho[q]) >= min_separation for q in chosen):
            chosen.append(p)
        if len(chosen) == n_shells:
            break
    if len(chosen) < n_shells:
        ix, iz = np.nonzero(count_map)
        centres = pixel_centres()
        found = find_shells(np.hypot(centres[ix], centres[iz]), count_map[ix, iz].astype(np.float64))
        if found.n_found == n_shells:
            return np.sort(np.array([p["R"] for p in found.peaks]))
        raise InputError(f"count map: found {len(chosen)} separated radial peak(s) and {found.n_found} shell(s) by "
                         f"the shell search, expected {n_shells} shells")
    out = []
    slope = np.diff(prof)  # slope[i] = prof[i + 1] - prof[i], centred at (rho[i] + rho[i + 1]) / 2
    for p in chosen:
        window = int(np.ceil(min_separation / 2 / step))
        q = p + int(np.argmin(slope[p : p + window]))
        edge = 0.5 * (rho[q] + rho[q + 1])
        out.append(rho[p] + EDGE_WEIGHT * (edge - rho[p]))
    return np.sort(np.array(out))


def predict_answer(checkpoint, count_map, *, view=None, R=None, device="auto"):
    """Beta's of the network's K shells, and radii, for one count map.

    Parameters
    ----------
    checkpoint : str or Path
        Trained network (:func:`sevi_lib.nn.checkpoint_io.load_checkpoint`); it records the view of its
        training shards.
    count_map : ndarray, shape (1024, 1024)
        The real count map (``Image[ix, iz]``), centred on the screen centre (recentred on the
        fitted centre for lab data).
    view : sevi_lib.nn.views.View, optional
        The input view; default the checkpoint's. A view other than the checkpoint's is refused.
    R : array_like, shape (K,), optional
        Radii to report, one per shell of the network; default :func:`radii_from_map`.
    device : str
        ``auto``, ``cpu`` or ``cuda``.

    Returns
    -------
    R : ndarray, shape (K,)
        Ascending radii.
    beta : ndarray, shape (K, N)
        Network output, shell 0 = smaller radius.

    Raises
    ------
    InputError
        Empty map, no view known, a view that differs from the training shards', or radii
        whose count differs from the network's shells.
    """
    # local: torch, only where a network is applied (sevi nn --help and the ensemble of answers go without)
    from sevi_lib.nn.checkpoint_io import load_checkpoint
    from sevi_lib.nn.device import resolve_device
    from sevi_lib.nn.inference import predict

    count_map = np.asarray(count_map, dtype=np.float64)
    if not count_map.sum() > 0:
        raise InputError("count map: no electrons")
    model, info = load_checkpoint(checkpoint, resolve_device(device))
    trained = View.from_config(info["view"]) if info.get("view") else None
    if view is None:
        if trained is None:
            raise InputError(f"{checkpoint}: the checkpoint records no input view; give one")
        view = trained
    elif trained is not None and view != trained:
        raise InputError(f"{checkpoint}: trained on view {trained.to_config()}, not {view.to_config()}")
    x = apply_view(count_map, view)[None]
    beta = predict((model, info), x, device=device)[0]
    if R is None:
        R = radii_from_map(count_map, n_shells=beta.shape[0])
    else:
        R = np.sort(np.asarray(R, dtype=np.float64).ravel())
        if R.size != beta.shape[0]:
            raise InputError(f"{checkpoint}: the network has {beta.shape[0]} shells but {R.size} radii were given")
    return R, beta


def predict_file(checkpoint, count_map, out, *, view=None, radii_from=None, device="auto"):
    """``sevi nn predict``: the network's Answer for a count map file, written to `out`.

    The output path is checked before any work (not an input, writable); the radii of
    `radii_from` must be finite and in (0, 1); the Answer is written only if every number in it
    is finite (rows sorted by R, shell 0 the smaller radius).

    Parameters
    ----------
    checkpoint : str or Path
    count_map : str or Path
        Count map (.npy, 1024 x 1024): the accumulated one, or on lab data the one recentred on
        the fitted centre (``sevi nn centre-map``).
    out : str or Path
        Answer file to write (HDF5).
    view : sevi_lib.nn.views.View, optional
        As in :func:`predict_answer`.
    radii_from : str or Path, optional
        Answer file whose R to report, one row per shell of the network (default:
        :func:`radii_from_map`).
    device : str

    Returns
    -------
    R : ndarray, shape (K,)
    beta : ndarray, shape (K, N)
    """
    check_outputs([out], [checkpoint, count_map, radii_from])
    m = read_map(count_map)
    R = read_radii(radii_from) if radii_from else None
    R, beta = predict_answer(checkpoint, m, view=view, R=R, device=device)
    check_prediction(R, beta, what=str(out))
    write_answer(out, R, beta)
    return R, beta


def _check_calib_centre(calib, centre, prior_sidecar):
    """Refuse calibration shards drawn around another prior centre (``beta_mu`` of their prior) than
    `centre`, the prior sidecar's answer: the shrinkage measured on them holds for the real map
    only if the members were fine-tuned around that answer."""
    for path in calib:
        mu = np.asarray(read_shard_attrs(path)["prior_json"].get("beta_mu", []), dtype=np.float64)
        if mu.shape != centre.shape or not np.allclose(mu, centre, rtol=0, atol=1e-9):
            raise InputError(f"{path}: drawn around another centre than the beta of {prior_sidecar} "
                             "(the calibration shards must come from the prior the members were fine-tuned on)")


def ensemble_file(checkpoints, count_map, calib, out, sidecar, *, prior_sidecar=None, radii_from=None, view=None,
                  device="auto"):
    """``sevi nn ensemble``: the members' combined Answer and its standard errors.

    Every member (checkpoint) predicts the real count map and the calibration shards; the
    answer and its standard errors are :func:`sevi_lib.nn.ensemble.ensemble_answer`'s, shrunk
    towards the prior centre when `prior_sidecar` is given. Outputs are checked before any work.

    Parameters
    ----------
    checkpoints : sequence of str or Path
        The members' trained networks (same view, same shells).
    count_map : str or Path
        The network's input map (.npy), as in :func:`predict_file`.
    calib : sequence of str or Path
        Labelled shards drawn from the fine-tuning prior that no member trained on.
    out : str or Path
        Answer file to write (HDF5).
    sidecar : str or Path
        JSON to write: the returned dict.
    prior_sidecar : str or Path, optional
        The fit's sidecar (``fit.json``) whose ``beta`` is the prior centre the network's answer
        is shrunk towards (:func:`sevi_lib.nn.ensemble.shrink_to_centre`); the calibration shards
        must have been drawn around it. None: the ensemble mean.
    radii_from : str or Path, optional
        Answer file whose R to report (default: :func:`radii_from_map`).
    view : sevi_lib.nn.views.View, optional
    device : str

    Returns
    -------
    dict
        ``R``, the :func:`~sevi_lib.nn.ensemble.ensemble_answer` fields, ``checkpoints``.

    Raises
    ------
    InputError
        A member or prior whose shells or betas differ from the others', calibration shards
        drawn around another centre, unreadable inputs.
    """
    from sevi_lib.fit.files import read_sidecar  # local: the fit's optimizers (~0.2 s more)
    from sevi_lib.nn.data import ShardDataset  # local: torch
    from sevi_lib.nn.inference import predict  # local: torch

    checkpoints = [str(c) for c in checkpoints]
    if not checkpoints:
        raise InputError("ensemble: no member checkpoints")
    check_outputs([out, sidecar], [*checkpoints, count_map, *calib, prior_sidecar, radii_from])
    m = read_map(count_map)
    R = read_radii(radii_from) if radii_from else None
    labels = ShardDataset(calib).labels()
    members, calib_preds = [], []
    for ck in checkpoints:
        R_m, beta = predict_answer(ck, m, view=view, R=R, device=device)
        if members and beta.shape != members[0].shape:
            raise InputError(f"{ck}: predicts {beta.shape} betas, {checkpoints[0]} {members[0].shape}")
        members.append(beta)
        calib_preds.append(predict(ck, calib, device=device))
        R = R_m if R is None else R
    centre = None
    if prior_sidecar:
        shells, _ = read_sidecar(prior_sidecar)
        centre = shells["beta"][np.argsort(shells["R"])]
        if centre.shape != members[0].shape:
            raise InputError(f"{prior_sidecar}: {centre.shape} betas, the network predicts {members[0].shape}")
        _check_calib_centre(calib, centre, prior_sidecar)
    doc = ensemble_answer(np.array(members), np.array(calib_preds), labels, centre=centre,
                          combine=prior_sidecar is not None)
    beta = np.asarray(doc["beta"])
    check_prediction(R, beta, what=str(out))
    write_answer(out, R, beta)
    doc = {"R": np.asarray(R).tolist(), **doc, "checkpoints": checkpoints,
           "prior": str(prior_sidecar) if prior_sidecar else None}
    write_text(sidecar, json.dumps(doc, indent=1) + "\n")
    return doc
