"""The ensemble's answer: members combined, standard errors, and shrinkage towards the prior centre.

M networks fine-tuned independently (other seeds, other synthesis shards) each predict the betas
of the real count map. Their mean is the network's own answer (``beta_network`` in ``nn.json``);
its standard error is, coefficient by coefficient (:func:`network_errors`):

- ``rms_calib``: how far the ensemble mean lands from the truth, root mean square over maps drawn
  from the fine-tuning prior (the ``calib`` shards, which no member trained on or chose its
  checkpoint by); this holds the members' common error and their average disagreement;
- inflated where the members disagree on the real map more than they did on average on those
  maps (a map unlike the prior's): ``se^2 = rms_calib^2 + max(spread_real^2 - mean_calib(spread^2), 0)``
  with ``spread`` the members' standard deviation over sqrt(M).

Two members agree on a map by chance often enough that the spread alone (or a systematic part
plus the spread) would give far too small errors now and then; the calibration RMS is the floor.
On maps from the prior the pulls have mean 0 and spread 1 (``tests/nn/test_ensemble.py``: a model
of members with common and own errors, and a small trained ensemble on synthesised maps).

The answer (``beta``, ``se`` of ``nn.json``; ``nn.h5``). The network is fine-tuned on maps drawn
around a centre c (the fit's answer with ``centre: fit``) and predicts the residual around it;
its answer p and the centre are two estimates of the same betas whose errors are correlated (the
network starts at c and sees the same electrons as the fit). :func:`shrink_to_centre` does not
assume them independent: it measures, on the calibration maps, how much of the
network's departure from the centre, ``d = p - c``, is a departure of the truth,
``t = y - c``, by least squares per shell (pooled over its coefficients, each in units of
its prior width), ``s_ls = sum(d t) / sum(d^2)``,
reduced by its own statistical variance (a weight within about one standard error of 0 is a
chance correlation) and clipped to [0, 1], and answers ``c + s (p - c)`` with the standard error
the root mean square of ``c + s d - y`` over those maps (inflated for the members' disagreement
as above, times s). This is the least-squares linear combination of the two estimates: a network
with no skill (its departures uncorrelated with the truth's) gets s = 0, the answer is the
centre and its standard error the prior's width; one with full skill keeps its own answer.
``weight_network`` of ``nn.json`` is s. It replaces the inverse-variance combination used before
(``w p + (1 - w) c``, w from the two standard errors), which treated the errors as independent.

What the calibration maps can and cannot tell. On them the centre c is the same for every map
and independent of the map's noise, the truth drawn around it; on the real map c is the fit's
answer *of that map*, from the same electrons. In a linear model (the fit efficient, the
network a Bayes estimator under the prior) the calibration maps give s near 1 (the network's
departures from c follow the truth's), while on the real map its departure from the fit's answer
is the part of its error the fit does not share, and the best s would be near 0. The
calibration maps' s is therefore, in that model, an upper bound on the weight the real map
deserves when the network's errors are positively correlated with the fit's and larger; the
shrinkage removes what
the calibration maps can show to be noise (``docs/network.md``, ``docs/benchmarks.md``).

API
---
``network_errors(member_preds, calib_preds, calib_labels)`` -> ``Errors``
``shrink_to_centre(errors, centre, calib_mean, calib_labels, calib_centre)`` -> ``Shrinkage``
``ensemble_answer(member_preds, calib_preds, calib_labels, *, centre=None, calib_centre=None, combine=True)``
    -> dict (the sidecar ``nn.json``)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sevi_lib.core.errors import InputError


class Errors(NamedTuple):
    """The ensemble's answer and its standard errors (all ``(K, N)``).

    Attributes
    ----------
    beta : ndarray
        Mean of the members' predictions of the real map.
    se : ndarray
        Standard error of `beta`: ``sqrt(rms_calib^2 + max(spread^2 - calib_spread^2, 0))``.
    systematic : ndarray
        The members' common error on the calibration maps, ``sqrt(max(rms_calib^2 - calib_spread^2, 0))``.
    spread : ndarray
        The members' standard deviation on the real map over sqrt(M) (0 with one member).
    rms_calib : ndarray
        Root mean square of the ensemble mean's error on the calibration maps.
    calib_spread : ndarray
        Root mean square over the calibration maps of the members' spread (as `spread`).
    """

    beta: np.ndarray
    se: np.ndarray
    systematic: np.ndarray
    spread: np.ndarray
    rms_calib: np.ndarray
    calib_spread: np.ndarray


def _spread(preds: np.ndarray) -> np.ndarray:
    """Standard error of the mean over axis 0 (members); zero for one member."""
    m = preds.shape[0]
    if m < 2:
        return np.zeros(preds.shape[1:])
    return preds.std(axis=0, ddof=1) / np.sqrt(m)


def network_errors(member_preds, calib_preds, calib_labels) -> Errors:
    """The ensemble mean of the real map and its standard errors.

    Parameters
    ----------
    member_preds : array_like, shape (M, K, N)
        Each member's prediction of the real map.
    calib_preds : array_like, shape (M, n, K, N)
        Each member's predictions of the n calibration maps.
    calib_labels : array_like, shape (n, K, N)
        The calibration maps' true betas.

    Returns
    -------
    Errors

    Raises
    ------
    InputError
        Shapes that disagree, fewer than two calibration maps, or non-finite numbers.
    """
    real = np.asarray(member_preds, dtype=np.float64)
    cp = np.asarray(calib_preds, dtype=np.float64)
    cl = np.asarray(calib_labels, dtype=np.float64)
    if real.ndim != 3 or cp.ndim != 4 or cp.shape[0] != real.shape[0] or cp.shape[2:] != real.shape[1:] \
            or cl.shape != cp.shape[1:]:
        raise InputError(f"ensemble: member predictions {real.shape}, calibration predictions {cp.shape} and "
                         f"labels {cl.shape} do not agree (M members, n maps, K shells, N betas)")
    if cl.shape[0] < 2:
        raise InputError("ensemble: need at least two calibration maps")
    if not (np.isfinite(real).all() and np.isfinite(cp).all() and np.isfinite(cl).all()):
        raise InputError("ensemble: non-finite predictions or labels")
    rms = np.sqrt(((cp.mean(axis=0) - cl) ** 2).mean(axis=0))
    calib_spread2 = (_spread(cp) ** 2).mean(axis=0)
    systematic = np.sqrt(np.maximum(rms ** 2 - calib_spread2, 0.0))
    spread = _spread(real)
    se = np.sqrt(rms ** 2 + np.maximum(spread ** 2 - calib_spread2, 0.0))
    return Errors(real.mean(axis=0), se, systematic, spread, rms, np.sqrt(calib_spread2))



class Shrinkage(NamedTuple):
    """The network's answer shrunk towards the prior centre (all ``(K, N)``).

    Attributes
    ----------
    beta : ndarray
        ``c + s (p - c)``: the centre c plus s times the network's departure from it.
    se : ndarray
        Standard error of `beta`: ``sqrt(rms_calib^2 + s^2 excess)`` with ``excess`` the members'
        disagreement on the real map beyond their average one on the calibration maps.
    s : ndarray
        The network's weight, one per shell (the same for its coefficients): the least-squares
        ``sum(d t) / sum(d^2)`` over the calibration maps and the shell's coefficients (in units
        of their prior widths), reduced by its own statistical variance and clipped to [0, 1]
        (0 where the network never departed from the centre there).
    rms_calib : ndarray
        Root mean square over the calibration maps of ``c + s d - y``.
    rms_centre : ndarray
        Root mean square over the calibration maps of ``c - y`` (the centre's own error there).
    """

    beta: np.ndarray
    se: np.ndarray
    s: np.ndarray
    rms_calib: np.ndarray
    rms_centre: np.ndarray


def _weight(d, t):
    """One weight per shell, pooled over its coefficients: ``clip(s_ls (1 - v / s_ls^2), 0, 1)``.

    `d`, `t` have shape ``(n, K, N)``. Each coefficient is scaled by the root mean square of its
    `t` over the maps (the prior's width; a coefficient the prior never varied is left out), and
    per shell ``s_ls = sum(d t) / sum(d^2)`` over maps and coefficients, with statistical variance
    ``v = sum((t - s_ls d)^2) / ((m - 1) sum(d^2))`` (m the pooled terms); the positive part of
    ``s_ls (1 - v / s_ls^2)``, clipped to [0, 1], broadcast over the shell's coefficients. 0 where
    the network never departed from the centre.
    """
    n, K, N = d.shape
    width = np.sqrt((t ** 2).mean(axis=0))
    used = width > 0
    scale = np.divide(1.0, width, out=np.zeros_like(width), where=used)
    ds, ts = d * scale, t * scale
    sdd = (ds * ds).sum(axis=(0, 2))
    ok = sdd > 0
    s_ls = np.divide((ds * ts).sum(axis=(0, 2)), sdd, out=np.zeros_like(sdd), where=ok)
    m = n * used.sum(axis=1)
    res = ((ts - s_ls[None, :, None] * ds) ** 2).sum(axis=(0, 2))
    var = np.divide(res, np.maximum(m - 1, 1) * sdd, out=np.zeros_like(sdd), where=ok)
    excess = np.maximum(s_ls ** 2 - var, 0.0)
    s = np.clip(np.divide(excess, s_ls, out=np.zeros_like(sdd), where=s_ls > 0), 0.0, 1.0)
    return np.broadcast_to(s[:, None], (K, N)).copy()


def shrink_to_centre(errors: Errors, centre, calib_mean, calib_labels, calib_centre) -> Shrinkage:
    """Regression calibration of the network's departure from the prior centre.

    Per shell, over the calibration maps i and the shell's coefficients j (each scaled by its
    prior width, the root mean square of its ``t`` over the maps): ``d_ij = p_ij - c_ij`` (ensemble
    mean minus the map's prior centre) and ``t_ij = y_ij - c_ij`` (truth minus centre);
    ``s_ls = sum(d t) / sum(d^2)``, the least-squares coefficient of the truth's departure on the
    network's, with statistical variance ``v = sum((t - s_ls d)^2) / ((m - 1) sum(d^2))`` (m
    terms); ``s = clip(s_ls (1 - v / s_ls^2), 0, 1)`` (0 for ``s_ls <= 0``), one weight for all the
    shell's coefficients. One weight per shell rather than per coefficient: with 64 maps a
    weight per coefficient let a chance correlation through on a few of 24 coefficients (s = 1
    on four of the embedded default's, where the network's departures followed nothing), and
    the shell's answer moved away from the centre by that. The factor ``1 - v /
    s_ls^2`` (positive part) is the estimate of ``s^2 / (s^2 + v)``, the weight that minimises the
    expected squared error of ``s_ls`` times it: a network whose departures from the centre are
    small and only by chance correlated with the truth's (``s_ls`` within about one standard
    error of 0) gets weight 0 rather than a random one. The answer is
    ``centre + s (errors.beta - centre)``.

    Parameters
    ----------
    errors : Errors
        :func:`network_errors` of the real map (its ``beta`` is the ensemble mean p; ``se^2 -
        rms_calib^2`` is the members' excess disagreement there).
    centre : array_like, shape (K, N)
        The prior centre of the real map (the fit's answer the members were fine-tuned around).
    calib_mean : array_like, shape (n, K, N)
        The ensemble mean of each calibration map.
    calib_labels : array_like, shape (n, K, N)
        Their true betas.
    calib_centre : array_like, shape (K, N) or (n, K, N)
        The centre of the prior each calibration map was drawn from (the same as `centre` when
        the shards were drawn around the real map's first pass).

    Returns
    -------
    Shrinkage

    Raises
    ------
    InputError
        Shapes that disagree or non-finite numbers.
    """
    c = np.asarray(centre, dtype=np.float64)
    cm = np.asarray(calib_mean, dtype=np.float64)
    y = np.asarray(calib_labels, dtype=np.float64)
    cc = np.asarray(calib_centre, dtype=np.float64)
    if c.shape != errors.beta.shape or cm.shape != y.shape or cm.shape[1:] != c.shape \
            or cc.shape not in (c.shape, cm.shape):
        raise InputError(f"ensemble: centre {c.shape}, calibration means {cm.shape}, labels {y.shape} and "
                         f"centres {cc.shape} do not agree with the answer {errors.beta.shape}")
    if not (np.isfinite(c).all() and np.isfinite(cc).all()):
        raise InputError("ensemble: non-finite prior centre")
    d, t = cm - cc, y - cc
    s = _weight(d, t)
    rms = np.sqrt(((s * d - t) ** 2).mean(axis=0))
    excess = np.maximum(errors.se ** 2 - errors.rms_calib ** 2, 0.0)
    return Shrinkage(c + s * (errors.beta - c), np.sqrt(rms ** 2 + s ** 2 * excess), s, rms,
                     np.sqrt((t ** 2).mean(axis=0)))


def ensemble_answer(member_preds, calib_preds, calib_labels, *, centre=None, calib_centre=None,
                    combine: bool = True) -> dict:
    """The network's answer with standard errors, as written to ``nn.json``.

    Parameters
    ----------
    member_preds, calib_preds, calib_labels : as in :func:`network_errors`
    centre : array_like, shape (K, N), optional
        The prior centre of the real map (the fit's ``beta`` with ``centre: fit``).
    calib_centre : array_like, shape (K, N) or (n, K, N), optional
        The prior centre of the calibration maps (default: `centre`).
    combine : bool
        Shrink the network's answer towards the centre (:func:`shrink_to_centre`); needs
        `centre`. Otherwise the answer is the ensemble mean.

    Returns
    -------
    dict
        ``beta``, ``se`` (the answer), ``beta_network``, ``se_network`` (the ensemble mean and its
        standard error), ``systematic``, ``spread``, ``rms_calib`` (of the ensemble mean),
        ``members`` (each member's prediction), ``M``, ``n_calib``, ``combined`` (bool),
        ``weight_network`` (s per coefficient; 1 without shrinkage), ``rms_centre`` (the centre's
        error on the calibration maps; None without shrinkage); arrays as nested lists.
    """
    err = network_errors(member_preds, calib_preds, calib_labels)
    beta, se, weight, rms_centre = err.beta, err.se, np.ones_like(err.beta), None
    if combine:
        if centre is None:
            raise InputError("ensemble: shrinking towards the prior centre needs the centre")
        shrunk = shrink_to_centre(err, centre, np.asarray(calib_preds, dtype=np.float64).mean(axis=0), calib_labels,
                                  centre if calib_centre is None else calib_centre)
        beta, se, weight, rms_centre = shrunk.beta, shrunk.se, shrunk.s, shrunk.rms_centre.tolist()
    preds = np.asarray(member_preds, dtype=np.float64)
    return {"beta": beta.tolist(), "se": se.tolist(), "beta_network": err.beta.tolist(),
            "se_network": err.se.tolist(), "systematic": err.systematic.tolist(), "spread": err.spread.tolist(),
            "rms_calib": err.rms_calib.tolist(), "members": preds.tolist(), "M": int(preds.shape[0]),
            "n_calib": int(np.asarray(calib_labels).shape[0]), "combined": bool(combine),
            "weight_network": weight.tolist(), "rms_centre": rms_centre}
