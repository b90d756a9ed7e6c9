"""The grader's score.

Per shell j: ``d_j = sqrt(sum_{i>=1} 2/(4i+1) (betahat_{2i,j} - beta_{2i,j})^2)``, the shorter beta
vector zero-padded: the L2 distance between the two angular densities. The published text scores
``d_0 + d_1``; the published grader displayed ``d_0`` and ``Rhat_0 - R_0``. Both are reported.
"""

import numpy as np

from sevi_lib.core.angular import distance_weights
from sevi_lib.core.errors import InputError


def _pad(a, n):
    out = np.zeros(a.shape[:-1] + (n,))
    out[..., : a.shape[-1]] = a
    return out


def shell_distance(beta_hat, beta):
    """Per-shell distance between two beta vectors (or stacks of them).

    Parameters
    ----------
    beta_hat, beta : array_like, shape (..., N1) and (..., N2)
        beta_2 first; the shorter is zero-padded.

    Returns
    -------
    ndarray, shape (...)
    """
    beta_hat = np.asarray(beta_hat, dtype=np.float64)
    beta = np.asarray(beta, dtype=np.float64)
    n = max(beta_hat.shape[-1], beta.shape[-1])
    d = _pad(beta_hat, n) - _pad(beta, n)
    return np.sqrt((d * d) @ distance_weights(n))


#: Largest radius an answer may give (screen units; the screen's corner is at sqrt(2)).
R_MAX = 1.5


def check_answer(answer, n_shells, path="answer", truth_path=None):
    """Refuse what the grader refuses, with the reason.

    Parameters
    ----------
    answer : ndarray
        Structured ``Answer`` table.
    n_shells : int
        Rows of the truth.
    path : str
        Name used in the message.
    truth_path : str, optional
        Name of the truth file (named when the shell counts differ).

    Raises
    ------
    InputError
        Missing column, wrong row count or SphereIds, non-float64 beta, non-finite values, a
        radius outside (0, 1.5).
    """
    names = answer.dtype.names or ()
    for col in ("SphereId", "R", "beta"):
        if col not in names:
            raise InputError(f"{path}: 'Answer' lacks the column '{col}' (has {', '.join(names) or 'none'})")
    if len(answer) != n_shells:
        where = f" ({truth_path})" if truth_path else ""
        raise InputError(f"{path}: 'Answer' has {len(answer)} rows, the truth has {n_shells}{where}: "
                         "an answer gives one row per shell of the truth")
    if sorted(int(s) for s in answer["SphereId"]) != list(range(n_shells)):
        raise InputError(f"{path}: SphereIds {list(answer['SphereId'])} differ from the truth's {list(range(n_shells))}")
    if answer.dtype["beta"].base != np.float64:
        raise InputError(f"{path}: beta is {answer.dtype['beta'].base}, the grader requires float64")
    if not (np.all(np.isfinite(answer["beta"])) and np.all(np.isfinite(answer["R"]))):
        raise InputError(f"{path}: 'Answer' holds non-finite values")
    bad = [f"{r:g}" for r in np.ravel(answer["R"]) if not 0.0 < r < R_MAX]
    if bad:
        raise InputError(f"{path}: 'Answer' radii {', '.join(bad)} are outside (0, {R_MAX:g}) (screen units)")


def score(answer, truth, path="answer", truth_path=None):
    """Score an answer against the truth.

    Rows are matched by SphereId (0 = smaller radius, as in the truth).

    Parameters
    ----------
    answer : ndarray
        Structured ``Answer`` table (checked with :func:`check_answer`).
    truth : sevi_lib.core.shells.Shells
    path : str
        Name used in error messages.
    truth_path : str, optional
        Name of the truth file in error messages.

    Returns
    -------
    dict
        ``distance`` (per shell, list), ``total`` (sum), ``dR`` (Rhat - R per shell, list).
    """
    check_answer(answer, truth.n_shells, path, truth_path)
    rows = answer[np.argsort(answer["SphereId"])]
    beta_hat = rows["beta"].reshape(len(rows), -1)  # a scalar beta field is one coefficient per row
    d = shell_distance(beta_hat, truth.beta)
    return {
        "distance": [float(v) for v in d],
        "total": float(d.sum()),
        "dR": [float(v) for v in rows["R"] - truth.R],
    }
