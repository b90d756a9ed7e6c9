"""Priors over K-shell parameter sets, for synthesising the network's training data.

Two priors, both described by a :class:`Prior` (per-shell, per-coefficient truncated normals for
beta, uniform ranges for R, sigma_R and the number of electrons per shell):

- the **pretraining** prior (:func:`pretrain_prior`), always two shells: the seed team's ranges, estimated from
  the original training data (team report, section 3): beta_{2i} from truncated normals with
  means ``(1, .85, .55, .25, .1, .04, .015, .002, .004, 0, 0, 0)``, standard deviations
  ``(.65, .5, .5, .5, .5, .3, .2, .1, .05, .02, .01, .01)`` and limits
  :data:`SEED_BETA_LOW` .. :data:`SEED_BETA_HIGH`; both radii from U(0.3, 0.9), sorted, with a
  minimum separation; sigma_R from U(0.005, 0.0095); electrons per shell from a range;
- the **fine-tuning** prior (:func:`finetune_prior`): centred on a first-pass estimate (the
  fit's answer or the pretrained network's prediction) with configurable widths. It has as many
  shells K (any K >= 1) as the first pass: lab data with three open channels gives three-shell
  training maps, and the network fine-tuned on them (from the two-shell pretrained network, its
  final linear layer re-initialised: :mod:`sevi_lib.nn.trainer`) answers with K rows. With K = 2
  every draw is exactly what the two-shell code drew (same generator calls, same numbers).

Unlike the seed team's synthesis, only physical densities (I(c) >= 0 on [-1, 1], checked exactly
with :func:`sevi_lib.core.angular.is_physical`) are returned: unphysical beta vectors are rejected and
redrawn, shell by shell; radius sets with two neighbours closer than the minimum separation are redrawn too. The
fraction accepted is reported in :class:`Draw` (for the pretraining prior about 96 % of
single-shell beta vectors are physical).

Truncated normals are drawn by inversion (``scipy.stats.truncnorm.ppf`` of uniforms from the
given :class:`numpy.random.Generator`), so a draw depends only on the generator's state.
"""

from dataclasses import dataclass

import numpy as np
from scipy.stats import truncnorm

from sevi_lib.core.angular import is_physical
from sevi_lib.core.errors import InputError
from sevi_lib.core.shells import N_BETA

#: Means of beta_2 .. beta_24 of the seed team's pretraining prior.
SEED_BETA_MU = (1.0, 0.85, 0.55, 0.25, 0.1, 0.04, 0.015, 0.002, 0.004, 0.0, 0.0, 0.0)
#: Standard deviations of the seed team's truncated normals.
SEED_BETA_SIGMA = (0.65, 0.5, 0.5, 0.5, 0.5, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01, 0.01)
#: Lower truncation limits (seed team's ``limit[:, 0]``).
SEED_BETA_LOW = (0.35, 0.43, 0.25, 0.118, 0.045, 0.012, 0.0026, 0.0004, 7.0e-5, 5.6e-6, 1.2e-7, 2e-9)
#: Upper truncation limits (seed team's ``limit[:, 1]``).
SEED_BETA_HIGH = (1.0, 1.434, 1.24, 0.9, 0.6, 0.36, 0.2, 0.1, 0.045, 0.019, 0.0067, 0.0023)

#: Default pretraining configuration (the ``nn.pretrain.prior`` config section).
PRETRAIN_DEFAULTS = {
    "beta_mu": list(SEED_BETA_MU),
    "beta_sigma": list(SEED_BETA_SIGMA),
    "beta_low": list(SEED_BETA_LOW),
    "beta_high": list(SEED_BETA_HIGH),
    "R": [0.3, 0.9],
    "min_separation": 0.05,
    "sigma_R": [0.005, 0.0095],
    "electrons": [100000, 140000],
}

#: Default fine-tuning configuration (the ``nn.prior.finetune`` config section, without `centre`).
FINETUNE_DEFAULTS = {
    "beta_width": [0.25 * s for s in SEED_BETA_SIGMA],
    "beta_width_se": 0.0,
    "beta_truncate": 3.0,
    "R_width": 0.01,
    "min_separation": 0.05,
    "sigma_R": [0.005, 0.0095],
    "electrons": [100000, 140000],
}


def _shell_count(prior):
    """K of a :class:`Prior` under construction: the first axis of its 2-D per-shell arrays."""
    counts = set()
    for key in ("beta_mu", "beta_sigma", "beta_low", "beta_high", "R_range", "sigma_R_range", "electrons_range"):
        a = np.asarray(getattr(prior, key))
        if a.ndim == 2:
            counts.add(a.shape[0])
    if len(counts) > 1:
        raise InputError(f"prior {prior.name}: per-shell settings disagree on the number of shells "
                         f"({', '.join(str(k) for k in sorted(counts))})")
    K = counts.pop() if counts else 2
    if K < 1:
        raise InputError(f"prior {prior.name}: needs at least one shell")
    return K


@dataclass(frozen=True)
class Prior:
    """A prior over K-shell parameter sets (shell 0 = smaller radius after sorting).

    The shell count K is the first axis of the per-shell arrays given as 2-D (all must agree);
    arrays given as 1-D (one beta vector, one ``[low, high]`` range) are shared by every shell,
    and K is 2 when all are 1-D (the seed team's two-shell pretraining prior).

    Attributes
    ----------
    beta_mu, beta_sigma, beta_low, beta_high : ndarray, shape (K, N)
        Truncated normal of each coefficient of each shell: mean, standard deviation, limits.
        A zero standard deviation fixes the coefficient at its mean.
    R_range : ndarray, shape (K, 2)
        ``R_range[j] = (low, high)``: the radius drawn for shell j is uniform on it. The K
        radii are then sorted, and sets with two neighbours closer than `min_separation` are
        redrawn.
    min_separation : float
        Minimum R_{j+1} - R_j.
    sigma_R_range : ndarray, shape (K, 2)
        Uniform range of sigma_R per shell (after sorting by R).
    electrons_range : ndarray of int, shape (K, 2)
        Inclusive range of the number of electrons per shell in one count map (uniform integers).
    name : str
        Label stored with the synthesised shards.
    """

    beta_mu: np.ndarray
    beta_sigma: np.ndarray
    beta_low: np.ndarray
    beta_high: np.ndarray
    R_range: np.ndarray
    min_separation: float
    sigma_R_range: np.ndarray
    electrons_range: np.ndarray
    name: str = "prior"

    def __post_init__(self):
        arrays = {}
        K = _shell_count(self)
        for key in ("beta_mu", "beta_sigma", "beta_low", "beta_high"):
            a = np.asarray(getattr(self, key), dtype=np.float64)
            if a.ndim == 1:
                a = np.broadcast_to(a, (K, a.shape[0]))
            arrays[key] = a
        shapes = {a.shape for a in arrays.values()}
        if len(shapes) != 1 or arrays["beta_mu"].ndim != 2 or arrays["beta_mu"].shape[0] != K:
            raise InputError(f"prior {self.name}: beta_mu, beta_sigma, beta_low, beta_high need one common length N")
        if np.any(arrays["beta_sigma"] < 0) or np.any(arrays["beta_low"] > arrays["beta_high"]):
            raise InputError(f"prior {self.name}: beta_sigma must be >= 0 and beta_low <= beta_high")
        if np.any((arrays["beta_mu"] < arrays["beta_low"]) & (arrays["beta_sigma"] == 0)) or np.any(
            (arrays["beta_mu"] > arrays["beta_high"]) & (arrays["beta_sigma"] == 0)
        ):
            raise InputError(f"prior {self.name}: a fixed coefficient (beta_sigma = 0) lies outside its limits")
        for key, lo in (("R_range", 0.0), ("sigma_R_range", 0.0), ("electrons_range", 1)):
            a = np.asarray(getattr(self, key), dtype=np.int64 if key == "electrons_range" else np.float64)
            if a.ndim == 1:
                a = np.broadcast_to(a, (K, 2))
            if a.shape != (K, 2) or np.any(a[:, 0] > a[:, 1]) or np.any(a < lo):
                raise InputError(f"prior {self.name}: {key} must be [low, high] with {lo} <= low <= high")
            arrays[key] = a
        if np.any(arrays["R_range"] + 4 * arrays["sigma_R_range"].max() >= 1.0):
            raise InputError(f"prior {self.name}: radii up to {arrays['R_range'].max():g} leave the screen [-1, 1]")
        if self.min_separation < 0 or (
                K > 1 and arrays["R_range"][-1, 1] - arrays["R_range"][0, 0] < (K - 1) * self.min_separation):
            raise InputError(
                f"prior {self.name}: min_separation {self.min_separation:g} cannot be met by the radius ranges"
            )
        for key, a in arrays.items():
            a = np.array(a)
            a.setflags(write=False)
            object.__setattr__(self, key, a)
        object.__setattr__(self, "min_separation", float(self.min_separation))

    @property
    def n_beta(self):
        """Number of beta coefficients per shell."""
        return self.beta_mu.shape[1]

    @property
    def n_shells(self):
        """Number of shells K."""
        return self.beta_mu.shape[0]

    def describe(self):
        """A YAML-friendly dict of the prior (stored as a shard attribute)."""
        return {
            "name": self.name,
            "beta_mu": self.beta_mu.tolist(),
            "beta_sigma": self.beta_sigma.tolist(),
            "beta_low": self.beta_low.tolist(),
            "beta_high": self.beta_high.tolist(),
            "R_range": self.R_range.tolist(),
            "min_separation": self.min_separation,
            "sigma_R_range": self.sigma_R_range.tolist(),
            "electrons_range": self.electrons_range.tolist(),
        }


@dataclass(frozen=True)
class Draw:
    """Parameter sets drawn from a :class:`Prior`.

    Attributes
    ----------
    beta : ndarray, shape (n, K, N)
        Physical beta vectors, shell 0 = smaller radius.
    R : ndarray, shape (n, K)
        Radii, ascending along axis 1.
    sigma_R : ndarray, shape (n, K)
    n_electrons : ndarray of int64, shape (n, K)
    beta_acceptance : float
        Fraction of single-shell beta vectors drawn that were physical.
    R_acceptance : float
        Fraction of radius sets drawn that met the minimum separation.
    """

    beta: np.ndarray
    R: np.ndarray
    sigma_R: np.ndarray
    n_electrons: np.ndarray
    beta_acceptance: float
    R_acceptance: float

    @property
    def acceptance(self):
        """Fraction of whole parameter sets (every shell's beta and the radius set) accepted."""
        return self.beta_acceptance ** self.beta.shape[1] * self.R_acceptance


def _truncnorm(rng, mu, sigma, low, high, size):
    """Truncated normal draws by inversion; sigma = 0 returns mu."""
    u = rng.random(size + mu.shape)
    safe = np.where(sigma > 0, sigma, 1.0)
    a = (low - mu) / safe
    b = (high - mu) / safe
    x = mu + safe * truncnorm.ppf(u, a, b)
    return np.where(sigma > 0, np.clip(x, low, high), mu)


def _examined(flags, need):
    """Candidates examined until `need` were accepted (all of them if fewer were)."""
    hits = np.flatnonzero(flags)
    return int(hits[need - 1]) + 1 if len(hits) >= need else len(flags)


def _max_tries(n, what):
    raise InputError(f"prior: fewer than 1 in 1000 {what} drawn are acceptable; widen or move the prior")


def sample(prior, n, rng):
    """Draw `n` physical K-shell parameter sets (K = ``prior.n_shells``).

    The generator is called in the same order whatever K (beta shell by shell, then the radius
    sets, sigma_R, electron counts), so a two-shell prior draws what it always drew.

    Parameters
    ----------
    prior : Prior
    n : int
        Number of parameter sets.
    rng : numpy.random.Generator
        Source of randomness; the draw is a function of its state only.

    Returns
    -------
    Draw

    Raises
    ------
    InputError
        If fewer than 1 in 1000 candidates are acceptable (a prior far outside the physical
        region).
    """
    n = int(n)
    N = prior.n_beta
    K = prior.n_shells
    beta = np.empty((n, K, N))
    beta_tries = 0
    for j in range(K):
        got = 0
        while got < n:
            need = n - got
            batch = max(16, int(need * 1.2) + 8)
            cand = _truncnorm(rng, prior.beta_mu[j], prior.beta_sigma[j], prior.beta_low[j], prior.beta_high[j], (batch,))
            flags = np.asarray(is_physical(cand), dtype=bool)
            beta_tries += _examined(flags, need)
            ok = cand[flags][:need]
            beta[got : got + len(ok), j] = ok
            got += len(ok)
            if got == 0 and beta_tries > 1000 * max(n, 1) + 1000:
                _max_tries(n, "beta vectors")
    R = np.empty((n, K))
    R_tries = 0
    got = 0
    while got < n:
        need = n - got
        batch = max(16, int(need * 1.5) + 8)
        cand = rng.uniform(prior.R_range[:, 0], prior.R_range[:, 1], size=(batch, K))
        cand.sort(axis=1)
        flags = np.all(np.diff(cand, axis=1) >= prior.min_separation, axis=1)
        R_tries += _examined(flags, need)
        ok = cand[flags][:need]
        R[got : got + len(ok)] = ok
        got += len(ok)
        if got == 0 and R_tries > 1000 * max(n, 1) + 1000:
            _max_tries(n, "radius sets")
    sigma_R = rng.uniform(prior.sigma_R_range[:, 0], prior.sigma_R_range[:, 1], size=(n, K))
    n_el = rng.integers(prior.electrons_range[:, 0], prior.electrons_range[:, 1], size=(n, K), endpoint=True)
    return Draw(
        beta=beta,
        R=R,
        sigma_R=sigma_R,
        n_electrons=n_el.astype(np.int64),
        beta_acceptance=(K * n / beta_tries) if beta_tries else 1.0,
        R_acceptance=(n / R_tries) if R_tries else 1.0,
    )


def _vector(value, n, key):
    """A per-coefficient list as a length-`n` array: scalars broadcast, longer lists are cut,
    shorter ones padded with zeros (coefficients beyond the list fixed at 0)."""
    a = np.asarray(value, dtype=np.float64)
    if a.ndim == 0:
        return np.full(n, float(a))
    if a.ndim != 1:
        raise InputError(f"prior: {key} must be a number or a list of numbers")
    out = np.zeros(n)
    out[: min(n, a.size)] = a[:n]
    return out


def _range(value, key):
    a = np.asarray(value, dtype=np.float64)
    if a.shape != (2,):
        raise InputError(f"prior: {key} must be a [low, high] pair, got {value!r}")
    return a


def _electrons(c, map_total, what, n_shells=2):
    """Electron-count range from a config: ``[low, high]``, or ``"map"`` (share of the real map).

    ``electrons_share`` is the share of each shell in a two-shell map; with K shells each
    shell's share is ``electrons_share * 2 / K``, so the K shells together hold the same share of
    the real map's total as two did (exactly the configured share when K = 2).
    """
    value = c["electrons"]
    if isinstance(value, str):
        if value != "map" or map_total is None:
            raise InputError(f'{what} prior: electrons must be [low, high], or "map" with the real map\'s total')
        share = _range(c.get("electrons_share", [0.4, 0.6]), "electrons_share")
        if n_shells != 2:
            share = share * 2.0 / n_shells
        return np.rint(share * float(map_total)).astype(np.int64)
    return _range(value, "electrons").astype(np.int64)


def pretrain_prior(cfg=None, n_beta=N_BETA, map_total=None):
    """The pretraining prior from its config section.

    Parameters
    ----------
    cfg : dict, optional
        Keys of :data:`PRETRAIN_DEFAULTS`; missing keys take the defaults (the seed team's
        ranges). Per-coefficient lists are cut to `n_beta` entries or padded with zeros;
        scalars apply to every coefficient. ``electrons`` is ``[low, high]`` or ``"map"``.
    n_beta : int
        Number of beta coefficients per shell.
    map_total : float, optional
        Number of electrons in the real count map; required when ``electrons`` is ``"map"``,
        which draws each shell's count from ``electrons_share`` (default ``[0.4, 0.6]``) times
        `map_total`, so that the synthetic maps carry the real map's shot noise.

    Returns
    -------
    Prior
    """
    c = dict(PRETRAIN_DEFAULTS)
    c.update(cfg or {})
    beta = {k: _vector(c[k], n_beta, k) for k in ("beta_mu", "beta_sigma", "beta_low", "beta_high")}
    return Prior(
        R_range=_range(c["R"], "R"),
        min_separation=float(c["min_separation"]),
        sigma_R_range=_range(c["sigma_R"], "sigma_R"),
        electrons_range=_electrons(c, map_total, "pretraining"),
        name="pretrain",
        **beta,
    )


def finetune_prior(R, beta, cfg=None, *, sigma_R=None, map_total=None, beta_se=None):
    """The fine-tuning prior, centred on a first-pass estimate.

    Each beta coefficient of shell j is a normal centred on ``beta[j]`` with standard deviation
    ``beta_width`` (or, with ``beta_width_se`` > 0, ``beta_width_se`` times the first pass's
    standard error of that coefficient: a prior as wide as the first pass is uncertain)
    truncated at ``beta_truncate`` standard deviations; each radius is uniform
    on ``R[j] +- R_width`` (radii are sorted and separated as in pretraining); sigma_R and the
    electron counts are uniform on their configured ranges, or, for sigma_R, on
    ``sigma_R[j] +- sigma_R_width`` if a first-pass sigma_R is given and ``sigma_R_width`` is set.

    Parameters
    ----------
    R : array_like, shape (K,)
        First-pass radii, any number of shells K >= 1 (the prior has K shells).
    beta : array_like, shape (K, N)
        First-pass beta vectors (need not be physical: unphysical draws are rejected).
    cfg : dict, optional
        Keys of :data:`FINETUNE_DEFAULTS` (and optionally ``sigma_R_width``).
    sigma_R : array_like, shape (K,), optional
        First-pass sigma_R, used only with ``sigma_R_width``.
    map_total : float, optional
        Number of electrons in the real count map (for ``electrons: "map"``, as in
        :func:`pretrain_prior`; with K shells each shell's share is ``electrons_share * 2 / K``).
    beta_se : array_like, shape (K, N), optional
        Standard errors of the first pass's beta (rows as `beta`); needed by ``beta_width_se``.

    Returns
    -------
    Prior
        K shells; the minimum separation is the configured one or half the closest first-pass
        gap, whichever is smaller (no constraint with one shell).
    """
    c = dict(FINETUNE_DEFAULTS)
    c.update(cfg or {})
    R = np.asarray(R, dtype=np.float64)
    beta = np.asarray(beta, dtype=np.float64)
    if R.ndim != 1 or R.size < 1 or beta.ndim != 2 or beta.shape[0] != R.size:
        raise InputError(f"fine-tuning prior: need K >= 1 shells with one beta row each, got R {R.shape} "
                         f"and beta {beta.shape}")
    K = R.size
    order = np.argsort(R)
    R, beta = R[order], beta[order]
    N = beta.shape[1]
    width = np.broadcast_to(_vector(c["beta_width"], N, "beta_width"), beta.shape)
    if float(c.get("beta_width_se") or 0) > 0:
        if beta_se is None:
            raise InputError("fine-tuning prior: beta_width_se needs the first pass's standard errors "
                             "(the fit's sidecar)")
        se = np.asarray(beta_se, dtype=np.float64)
        if se.shape != beta.shape or not np.all(np.isfinite(se)) or np.any(se < 0):
            raise InputError(f"fine-tuning prior: standard errors {se.shape} must be finite, >= 0 and match "
                             f"beta {beta.shape}")
        width = float(c["beta_width_se"]) * se[order]
    k = float(c["beta_truncate"])
    w = float(c["R_width"])
    R_range = np.stack([np.clip(R - w, 1e-3, None), R + w], axis=1)
    sr = _range(c["sigma_R"], "sigma_R")
    if sigma_R is not None and c.get("sigma_R_width"):
        s = np.asarray(sigma_R, dtype=np.float64)[order]
        sw = float(c["sigma_R_width"])
        sr = np.stack([np.clip(s - sw, 0.0, None), s + sw], axis=1)
    electrons = _electrons(c, map_total, "fine-tuning", n_shells=K)
    min_sep = float(c["min_separation"])
    if K > 1:
        min_sep = min(min_sep, float(np.min(np.diff(R))) / 2)
    return Prior(
        beta_mu=beta,
        beta_sigma=width,
        beta_low=beta - k * width,
        beta_high=beta + k * width,
        R_range=R_range,
        min_separation=min_sep,
        sigma_R_range=sr,
        electrons_range=electrons,
        name="finetune",
    )


def summarize(prior, n, seed=0):
    """Acceptance rates and coefficient means of `n` draws from `prior` (``sevi nn prior``).

    Parameters
    ----------
    prior : Prior
    n : int
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    dict
        ``prior`` (name), ``n``, ``acceptance``, ``beta_acceptance``, ``R_acceptance``,
        ``beta_mean`` (K lists of N), ``R_mean`` (K numbers).
    """
    d = sample(prior, n, np.random.default_rng(seed))
    return {
        "prior": prior.name,
        "n": n,
        "acceptance": d.acceptance,
        "beta_acceptance": d.beta_acceptance,
        "R_acceptance": d.R_acceptance,
        "beta_mean": d.beta.mean(axis=0).tolist(),
        "R_mean": d.R.mean(axis=0).tolist(),
    }
