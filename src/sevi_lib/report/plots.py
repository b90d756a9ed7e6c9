"""Plotting helpers (matplotlib, Agg backend; files only through :func:`save_figure`)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sevi_lib.core.io import atomic_path  # noqa: E402
from sevi_lib.fit.projection import projected_density  # noqa: E402


def save_figure(fig, path, dpi=110):
    """Save `fig` atomically (format from the suffix) and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def model_density(result, x, z):
    """Fitted screen density of all shells plus background at points (per unit area, in counts)."""
    lam = np.full(np.shape(x), float(result.background))
    for j in range(len(result.R)):
        lam = lam + result.weights[j] * projected_density(x, z, result.R[j], result.sigma_R[j], result.beta[j])
    return lam


def fit_report(result, x, z, w=None, title=None, n_alpha=256):
    """Figure: radial profile with the fitted model, and each shell's angular density.

    Parameters
    ----------
    result : sevi_lib.fit.result.FitResult
    x, z : ndarray
        Data positions (electrons or pixel centres), screen units.
    w : ndarray, optional
        Weights of the positions (pixel counts); for a frame sum, intensities divided by the
        mean spot total.
    title : str, optional
    n_alpha : int
        Angular samples of the model integrals.

    Returns
    -------
    matplotlib.figure.Figure
        Top: data histogram of rho per unit rho against the fitted model's radial profile.
        Below, one panel per shell: the fitted I_j(c) with its 1-SE band (delta method); the
        histogram of cos(alpha) = z / rho of the data within +-1.5 sigma_R of the shell's rim
        (where the screen angle is close to theta) and the model's prediction of that same
        histogram (dashed), both normalised to unit area.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    z = np.asarray(z, dtype=np.float64).ravel()
    w = np.ones_like(x) if w is None else np.asarray(w, dtype=np.float64).ravel()
    rho = np.hypot(x, z)
    S = len(result.R)
    fig, axes = plt.subplots(1 + S, 1, figsize=(7, 3.2 * (1 + S)))
    ax = axes[0]
    lo = max(0.0, result.R.min() - 0.08)
    hi = result.R.max() + 0.05
    bins = np.linspace(lo, hi, 301)
    hist, _ = np.histogram(rho, bins=bins, weights=w)
    centres = 0.5 * (bins[1:] + bins[:-1])
    width = bins[1] - bins[0]
    ax.step(centres, hist / width, where="mid", lw=0.8, label="data")
    alpha = (np.arange(n_alpha) + 0.5) * (2 * np.pi / n_alpha)
    rr = np.linspace(lo, hi, 1201)
    xx = rr[:, None] * np.sin(alpha)[None, :]
    zz = rr[:, None] * np.cos(alpha)[None, :]
    lam = model_density(result, xx, zz)
    ax.plot(rr, lam.mean(axis=1) * 2 * np.pi * rr, lw=1.0, label="fit")
    ax.set_xlabel("rho (screen units)")
    ax.set_ylabel("counts per unit rho")
    ax.legend()
    if title:
        ax.set_title(title)
    c = np.linspace(-1, 1, 401)
    cb = np.linspace(-1, 1, 41)
    for j in range(S):
        ax = axes[1 + j]
        val, se = result.density_band(c, j)
        # log scale: a sharply aligned shell's density spans decades between equator and poles
        positive = val[val > 0]
        floor = max(0.3 * positive.min(), 1e-3) if positive.size else 1e-3
        ax.fill_between(c, np.maximum(val - se, 0.5 * floor), val + se, alpha=0.35, color="C1", lw=0,
                        label="fit +- 1 SE")
        ax.plot(c, val, color="C1", lw=1.0)
        band = np.abs(rho - result.R[j]) < 1.5 * result.sigma_R[j]
        if np.any(band):
            ca = np.clip(z[band] / np.maximum(rho[band], 1e-300), -1, 1)
            h, _ = np.histogram(ca, bins=cb, weights=w[band], density=True)
            ax.step(0.5 * (cb[1:] + cb[:-1]), h, where="mid", color="C0", lw=0.8, label="data, rim band")
            rb = result.R[j] + result.sigma_R[j] * np.linspace(-1.5, 1.5, 31)
            xb = rb[:, None] * np.sqrt(1 - c ** 2)[None, :]
            zb = rb[:, None] * c[None, :]
            # density of cos(alpha) in the band: lambda * rho d rho d alpha, d alpha = dc / sqrt(1 - c^2)
            lb = (model_density(result, xb, zb) * rb[:, None]).sum(axis=0) / np.sqrt(np.maximum(1 - c ** 2, 1e-12))
            finite = np.abs(c) < 0.999
            lb = lb / np.trapezoid(lb[finite], c[finite])
            ax.plot(c[finite], lb[finite], "--", color="C0", lw=0.8, label="model, rim band")
        act = " (constraint I>=0 active)" if result.constraint_active[j] else ""
        ax.set_title(f"shell {j}: R = {result.R[j]:.5f} +- {result.se_R[j]:.1e}{act}", fontsize=9)
        ax.set_xlabel("cos(theta)")
        ax.set_yscale("log")
        ax.set_ylim(bottom=floor)
        ax.set_ylabel("density I(cos theta), log scale")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
