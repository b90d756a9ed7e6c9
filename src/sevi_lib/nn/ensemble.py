"""The ensemble's answer: members combined, standard errors, and the prior centre as a floor.

M networks fine-tuned independently (other seeds, other synthesis shards) each predict the betas
of the real count map. Their mean is the network's answer; its standard error is, coefficient by
coefficient (:func:`network_errors`):

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

The network is fine-tuned on maps drawn around a first-pass estimate (the fit's answer with
``centre: fit``), which is itself an estimate with standard errors. :func:`combine_with_prior`
combines the two by inverse-variance weights, coefficient by coefficient: where the network knows
less than the fit (a large ``se``), the answer stays at the prior centre; where it knows more, it
moves to the network's. The answer is therefore never much worse than the prior centre, whatever
the network learnt in its budget; the network's own answer is kept beside it
(``nn.json``: ``beta_network``, ``se_network``). The two are not independent (the network is
trained around the fit's answer and sees the same electrons), so the combined standard error is
the one of fully correlated errors, ``w se + (1 - w) prior_se`` with ``w`` the network's weight:
never below the smaller of the two weighted, never the too-small ``1/sqrt(1/se^2 + 1/prior_se^2)``.

API
---
``network_errors(member_preds, calib_preds, calib_labels)`` -> ``Errors``
``combine_with_prior(beta, se, prior_beta, prior_se)`` -> ``(beta, se)``
``ensemble_answer(member_preds, calib_preds, calib_labels, prior_beta=None, prior_se=None, ...)``
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


def combine_with_prior(beta, se, prior_beta, prior_se):
    """Inverse-variance weighted combination of two correlated estimates, coefficient by coefficient.

    Parameters
    ----------
    beta, se : array_like, shape (K, N)
        The network's answer and standard errors.
    prior_beta, prior_se : array_like, shape (K, N)
        The prior centre (the first-pass answer) and its standard errors.

    Returns
    -------
    beta : ndarray, shape (K, N)
    se : ndarray, shape (K, N)
        ``w se + (1 - w) prior_se`` with ``w = (1/se^2) / (1/se^2 + 1/prior_se^2)``: the standard
        error for fully correlated errors (the network is trained around the prior centre and
        sees the same data), an upper bound for any correlation.

    Raises
    ------
    InputError
        Shapes that disagree, or a standard error that is not positive and finite.
    """
    b, s = np.asarray(beta, dtype=np.float64), np.asarray(se, dtype=np.float64)
    pb, ps = np.asarray(prior_beta, dtype=np.float64), np.asarray(prior_se, dtype=np.float64)
    if not b.shape == s.shape == pb.shape == ps.shape:
        raise InputError(f"ensemble: network {b.shape} / {s.shape} and prior {pb.shape} / {ps.shape} differ in shape")
    if not (np.all(np.isfinite(s)) and np.all(s > 0) and np.all(np.isfinite(ps)) and np.all(ps > 0)):
        raise InputError("ensemble: standard errors must be positive and finite")
    w = (1.0 / s ** 2) / (1.0 / s ** 2 + 1.0 / ps ** 2)
    return w * b + (1 - w) * pb, w * s + (1 - w) * ps


def ensemble_answer(member_preds, calib_preds, calib_labels, *, prior_beta=None, prior_se=None,
                    combine: bool = True, floor: float = 1e-6) -> dict:
    """The network's answer with standard errors, as written to ``nn.json``.

    Parameters
    ----------
    member_preds, calib_preds, calib_labels : as in :func:`network_errors`
    prior_beta, prior_se : array_like, shape (K, N), optional
        The prior centre and its standard errors (the fit's ``beta`` and ``se_beta``).
    combine : bool
        Combine with the prior centre (:func:`combine_with_prior`); needs `prior_beta` and
        `prior_se`. Otherwise the answer is the network's own.
    floor : float
        Smallest standard error used in the combination (a coefficient the calibration maps
        never varied can have a zero error).

    Returns
    -------
    dict
        ``beta``, ``se`` (the answer), ``beta_network``, ``se_network``, ``systematic``,
        ``spread``, ``rms_calib``, ``members`` (each member's prediction), ``M``, ``n_calib``,
        ``combined`` (bool), ``weight_network`` (the network's share of the inverse-variance
        weight, per coefficient; 1 without combination); arrays as nested lists.
    """
    err = network_errors(member_preds, calib_preds, calib_labels)
    beta, se = err.beta, err.se
    weight = np.ones_like(beta)
    if combine:
        if prior_beta is None or prior_se is None:
            raise InputError("ensemble: combining with the prior needs its centre and standard errors")
        s = np.maximum(err.se, floor)
        ps = np.maximum(np.asarray(prior_se, dtype=np.float64), floor)
        beta, se = combine_with_prior(err.beta, s, prior_beta, ps)
        weight = (1 / s ** 2) / (1 / s ** 2 + 1 / ps ** 2)
    preds = np.asarray(member_preds, dtype=np.float64)
    return {"beta": beta.tolist(), "se": se.tolist(), "beta_network": err.beta.tolist(),
            "se_network": err.se.tolist(), "systematic": err.systematic.tolist(), "spread": err.spread.tolist(),
            "rms_calib": err.rms_calib.tolist(), "members": preds.tolist(), "M": int(preds.shape[0]),
            "n_calib": int(np.asarray(calib_labels).shape[0]), "combined": bool(combine),
            "weight_network": weight.tolist()}
