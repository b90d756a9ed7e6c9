"""The user files the network stage reads, validated where they enter; the files it writes.

A first-pass answer (the estimate the fine-tuning prior is centred on), the radii to report
(``sevi nn predict --radii-from``) and the real count map come from other stages or from a user;
their numbers are checked here so that a bad file ends in one ``InputError`` naming it, never in
a traceback deep inside the prior or a silently wrong answer.

API
---
``read_first_pass(path, n_beta)`` -> ``(R (2,), beta (2, n_beta))``: two shells, finite R in
    (0, 1), finite beta, a physical angular density (within :data:`PHYSICAL_TOL`).
``read_radii(path)`` -> ``R (2,)``: the radii of an Answer file (finite, in (0, 1)).
``check_prediction(R, beta, what)``: the numbers an Answer is written from are finite and in range.
``stage_prior(stage, settings, first_pass=None, count_map=None)`` -> :class:`~sevi_lib.nn.priors.Prior`:
    the prior of ``sevi nn synth`` / ``sevi nn prior`` from their settings and files.

Outputs are checked with :func:`sevi_lib.core.io.check_outputs` before any work.
"""

import numpy as np

from sevi_lib.core.angular import min_density
from sevi_lib.core.errors import InputError
from sevi_lib.core.io import read_answer, read_map

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
    if len(table) != 2:
        raise InputError(f"{path}: the Answer has {len(table)} rows, expected 2 shells")
    R = np.asarray(table["R"], dtype=np.float64)
    beta = np.asarray(table["beta"], dtype=np.float64).reshape(2, -1)
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
    ndarray, shape (2,)
        As stored (the caller sorts).

    Raises
    ------
    InputError
        Unreadable file, not two rows, R not finite or outside (0, 1).
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
    R : ndarray, shape (2,)
    beta : ndarray, shape (2, n_beta)

    Raises
    ------
    InputError
        Unreadable file, not two rows, R not finite or outside (0, 1), beta not finite, or an
        angular density below ``-PHYSICAL_TOL`` somewhere on [-1, 1].
    """
    R, b = _answer_columns(path)
    _check_radii(R, path)
    if not np.all(np.isfinite(b)):
        raise InputError(f"{path}: beta is not finite")
    for j in range(2):
        value, where = min_density(b[j])
        if value < -PHYSICAL_TOL:
            raise InputError(f"{path}: shell {j} has an unphysical beta (angular density {value:.4g} < 0 at "
                             f"cos(theta) = {where:.4f})")
    beta = np.zeros((2, n_beta))
    beta[:, : min(n_beta, b.shape[1])] = b[:, :n_beta]
    return R, beta


def check_prediction(R, beta, what="prediction"):
    """Refuse an Answer that would hold non-finite numbers or radii outside (0, 1).

    Parameters
    ----------
    R : ndarray, shape (S,)
    beta : ndarray, shape (S, N)
    what : str
        Name used in the message.
    """
    _check_radii(np.asarray(R, dtype=np.float64), what)
    if not np.all(np.isfinite(beta)):
        raise InputError(f"{what}: the network predicted non-finite beta")


def stage_prior(stage, settings, first_pass=None, count_map=None):
    """The prior of a synthesis stage, from its settings and input files.

    Parameters
    ----------
    stage : {"pretrain", "finetune"}
    settings : sevi_lib.nn.config.SynthSettings
        ``prior`` (the config section) and ``n_beta`` are used.
    first_pass : str or Path, optional
        Answer file the fine-tuning prior is centred on (required for ``finetune``).
    count_map : str or Path, optional
        The real count map (.npy), whose total sets the electron counts with ``electrons: "map"``.

    Returns
    -------
    sevi_lib.nn.priors.Prior
    """
    from sevi_lib.nn.priors import finetune_prior, pretrain_prior

    total = read_map(count_map).sum() if count_map else None
    if stage == "pretrain":
        return pretrain_prior(settings.prior, n_beta=settings.n_beta, map_total=total)
    if stage != "finetune":
        raise InputError(f"unknown stage {stage!r}; choose pretrain or finetune")
    if not first_pass:
        raise InputError("the fine-tuning prior needs --first-pass ANSWER (the estimate it is centred on)")
    R, beta = read_first_pass(first_pass, settings.n_beta)
    return finetune_prior(R, beta, settings.prior, map_total=total)
