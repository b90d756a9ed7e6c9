"""The user files the network stage reads, validated where they enter; the files it writes.

A first-pass answer (the estimate the fine-tuning prior is centred on), the radii to report
(``sevi nn predict --radii-from``), the fit's JSON sidecar (its image centre) and the real count
map come from other stages or from a user; their numbers are checked here so that a bad file
ends in one ``InputError`` naming it, never in a traceback deep inside the prior or a silently
wrong answer.

Answers have K rows, any K >= 1 (lab data has as many shells as open channels; the fit finds
K): the fine-tuning prior, its synthesis shards and the fine-tuned network take K from the
first pass.

API
---
``read_first_pass(path, n_beta)`` -> ``(R (K,), beta (K, n_beta))``: K >= 1 shells, finite R in
    (0, 1), finite beta, a physical angular density (within :data:`PHYSICAL_TOL`).
``read_radii(path)`` -> ``R (K,)``: the radii of an Answer file (finite, in (0, 1)).
``read_centre(path)`` -> ``(x0, z0)``: the fitted image centre of a fit's JSON sidecar (its
    ``"centre"``, screen units), finite and on the screen.
``check_prediction(R, beta, what)``: the numbers an Answer is written from are finite and in range.
``stage_prior(stage, settings, *, first_pass=None, count_map=None, first_pass_se=None)`` -> :class:`~sevi_lib.nn.priors.Prior`:
    the prior of ``sevi nn synth`` / ``sevi nn prior`` from their settings and files.

Outputs are checked with :func:`sevi_lib.core.io.check_outputs` before any work.
"""

import json

import numpy as np

from sevi_lib.core.angular import min_density
from sevi_lib.core.errors import InputError
from sevi_lib.core.io import check_input, read_answer, read_map

#: Largest negative excursion of the first pass's angular density I(c) (isotropic: I = 0.5) that
#: is still accepted (10 % of the isotropic density): the pretrained network's first pass is not
#: constrained to be physical, and the fine-tuning prior only needs a centre near physical
#: values (its draws are physical), so a slightly negative density is accepted (beta_2..6 =
#: 1.2, 0.3, 0.1 reaches -0.019), a clearly unphysical one refused (beta_2 = 1.5: -0.17).
PHYSICAL_TOL = 0.05


def _answer_columns(path):
    table = read_answer(path)
    names = table.dtype.names or ()
    for col in ("R", "beta"):
        if col not in names:
            raise InputError(f"{path}: 'Answer' lacks the column '{col}' (has {', '.join(names) or 'none'})")
    if table.ndim != 1 or len(table) < 1:
        raise InputError(f"{path}: the Answer has no rows, expected one per shell")
    R = np.asarray(table["R"], dtype=np.float64)
    beta = np.asarray(table["beta"], dtype=np.float64).reshape(len(table), -1)
    return R, beta


def _check_radii(R, what):
    if not np.all(np.isfinite(R)):
        raise InputError(f"{what}: R is not finite ({', '.join(f'{r:g}' for r in R)})")
    if not np.all((R > 0) & (R < 1)):
        raise InputError(f"{what}: R must lie in (0, 1), got {', '.join(f'{r:g}' for r in R)}")


def read_radii(path):
    """Radii of an Answer file, for ``sevi nn predict --radii-from``.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    ndarray, shape (K,)
        As stored (the caller sorts), one per row (K >= 1).

    Raises
    ------
    InputError
        Unreadable file, no rows, R not finite or outside (0, 1).
    """
    R, _ = _answer_columns(path)
    _check_radii(R, path)
    return R


def read_first_pass(path, n_beta):
    """R and beta of a first-pass Answer file (beta cut or zero-padded to `n_beta`).

    Parameters
    ----------
    path : str or Path
    n_beta : int

    Returns
    -------
    R : ndarray, shape (K,)
        One per row of the Answer, K >= 1 (the fine-tuning prior gets K shells).
    beta : ndarray, shape (K, n_beta)

    Raises
    ------
    InputError
        Unreadable file, no rows, R not finite or outside (0, 1), beta not finite, or an
        angular density below ``-PHYSICAL_TOL`` somewhere on [-1, 1].
    """
    R, b = _answer_columns(path)
    _check_radii(R, path)
    if not np.all(np.isfinite(b)):
        raise InputError(f"{path}: beta is not finite")
    K = len(R)
    for j in range(K):
        value, where = min_density(b[j])
        if value < -PHYSICAL_TOL:
            raise InputError(f"{path}: shell {j} has an unphysical beta (angular density {value:.4g} < 0 at "
                             f"cos(theta) = {where:.4f})")
    beta = np.zeros((K, n_beta))
    beta[:, : min(n_beta, b.shape[1])] = b[:, :n_beta]
    return R, beta


def read_centre(path):
    """The fitted image centre recorded in a fit's JSON sidecar (``sevi fit --sidecar``).

    The sidecar's ``"centre"`` is ``[x0, z0]``, screen units (the screen centre is (0, 0), 512
    pixels per unit); the network's input map is recentred on it (:mod:`sevi_lib.nn.centre`).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    tuple of float
        ``(x0, z0)``.

    Raises
    ------
    InputError
        Unreadable or non-JSON file, no ``"centre"`` (a sidecar of a fit without the centre),
        not two numbers, not finite, or off the screen (``|x0|, |z0| >= 1``).
    """
    check_input(path)
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}: not a readable JSON sidecar ({exc})") from None
    if not isinstance(doc, dict) or "centre" not in doc:
        raise InputError(f"{path}: the fit sidecar records no image centre ('centre': [x0, z0]); "
                         "refit with a sevi fit that fits the centre")
    try:
        centre = np.asarray(doc["centre"], dtype=np.float64)
    except (TypeError, ValueError):
        centre = np.array([])
    if centre.shape != (2,):
        raise InputError(f"{path}: 'centre' must be two numbers [x0, z0], got {doc['centre']!r}")
    if not np.all(np.isfinite(centre)):
        raise InputError(f"{path}: the fitted centre is not finite ({centre[0]:g}, {centre[1]:g})")
    if not np.all(np.abs(centre) < 1.0):
        raise InputError(f"{path}: the fitted centre ({centre[0]:g}, {centre[1]:g}) lies off the screen [-1, 1]")
    return float(centre[0]), float(centre[1])


def check_prediction(R, beta, what="prediction"):
    """Refuse an Answer that would hold non-finite numbers or radii outside (0, 1).

    Parameters
    ----------
    R : ndarray, shape (K,)
    beta : ndarray, shape (K, N)
    what : str
        Name used in the message.
    """
    _check_radii(np.asarray(R, dtype=np.float64), what)
    if not np.all(np.isfinite(beta)):
        raise InputError(f"{what}: the network predicted non-finite beta")


def stage_prior(stage, settings, *, first_pass=None, count_map=None, first_pass_se=None):
    """The prior of a synthesis stage, from its settings and input files.

    Parameters
    ----------
    stage : {"pretrain", "finetune"}
    settings : sevi_lib.nn.settings.SynthSettings
        ``prior`` (the config section) and ``n_beta`` are used.
    first_pass : str or Path, optional
        Answer file the fine-tuning prior is centred on (required for ``finetune``); its K rows
        give the prior K shells (the pretraining prior always has two).
    count_map : str or Path, optional
        The real count map (.npy), whose total sets the electron counts with ``electrons: "map"``.
    first_pass_se : str or Path, optional
        The fit's sidecar (JSON) whose ``se_beta`` are the first pass's standard errors, for a
        prior with ``beta_width_se`` (rows matched by R; cut or zero-padded to ``n_beta``).

    Returns
    -------
    sevi_lib.nn.priors.Prior
    """
    from sevi_lib.nn.priors import finetune_prior, pretrain_prior  # local: scipy.stats (~1 s); nn.predict, nn.centre need none

    total = read_map(count_map).sum() if count_map else None
    if stage == "pretrain":
        return pretrain_prior(settings.prior, n_beta=settings.n_beta, map_total=total)
    if stage != "finetune":
        raise InputError(f"unknown stage {stage!r}; choose pretrain or finetune")
    if not first_pass:
        raise InputError("the fine-tuning prior needs --first-pass ANSWER (the estimate it is centred on)")
    R, beta = read_first_pass(first_pass, settings.n_beta)
    se = _first_pass_se(first_pass_se, R, settings.n_beta) if first_pass_se else None
    return finetune_prior(R, beta, settings.prior, map_total=total, beta_se=se)


def _first_pass_se(sidecar, R, n_beta):
    """``se_beta`` of a fit sidecar in the row order of the first pass's R (matched by sorting)."""
    from sevi_lib.fit.files import read_sidecar  # local: the fit's optimizers (scipy, ~1.5 s)

    shells, _ = read_sidecar(sidecar)
    se = np.asarray(shells["se_beta"], dtype=np.float64)
    if se.ndim != 2 or se.shape[0] != len(R):
        raise InputError(f"{sidecar}: se_beta has {se.shape[0] if se.ndim == 2 else '?'} rows, the first pass "
                         f"{len(R)}")
    m = min(n_beta, se.shape[1])
    out = np.zeros((len(R), n_beta))
    out[np.argsort(R), :m] = se[np.argsort(shells["R"]), :m]
    return out
