"""Plotting helpers (matplotlib, Agg backend; files only through :func:`save_figure`)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from sevi_lib.core.io import atomic_path  # noqa: E402
from sevi_lib.core.spots import SpotModel  # noqa: E402
from sevi_lib.fit.projection import projected_density  # noqa: E402


def save_figure(fig, path, dpi=110):
    """Save `fig` atomically (format from the suffix) and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def fit_centre(result):
    """The image centre (x0, z0) a fit found, screen units; (0, 0) for a fit without one."""
    centre = getattr(result, "centre", None)
    if centre is None and isinstance(result, dict):
        centre = result.get("centre")
    return (0.0, 0.0) if centre is None else (float(centre[0]), float(centre[1]))


def model_density(result, x, z):
    """Fitted density of all shells plus background (per unit area, in counts) at points given
    relative to the fitted image centre (:func:`fit_centre`)."""
    lam = np.full(np.shape(x), float(result.background_density))  # per unit area (background: on the screen)
    for j in range(len(result.R)):
        lam = lam + result.weights[j] * projected_density(x, z, result.R[j], result.sigma_R[j], result.beta[j])
    return lam


def fit_report(result, x, z, w=None, *, title=None, n_alpha=256):
    """Figure: radial profile with the fitted model, and each shell's angular density.

    Parameters
    ----------
    result : sevi_lib.fit.result.FitResult
    x, z : ndarray
        Data positions (electrons or pixel centres), screen units (the fitted centre, if the
        result has one, is subtracted here).
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
    x0, z0 = fit_centre(result)  # data on the screen; the model lives around the fitted centre
    x = np.asarray(x, dtype=np.float64).ravel() - x0
    z = np.asarray(z, dtype=np.float64).ravel() - z0
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


def count_map_figure(count_map, centre=None, radii=None, title=None, bin_px=4):
    """A count map on a log colour scale, x horizontal and z (polarisation axis) vertical.

    The map is summed over ``bin_px x bin_px`` pixel blocks first, so that sparse maps stay
    visible at screen resolution. The fitted image centre, when given, is marked with a cross
    and the fitted shell radii are drawn as circles around it, so that an off-centre image or a
    missed shell shows at a glance.

    Parameters
    ----------
    count_map : ndarray, shape (n, n)
        ``Image[ix, iz]`` layout (:func:`sevi_lib.core.maps.count_map`).
    centre : (float, float), optional
        Image centre (x0, z0), screen units.
    radii : sequence of float, optional
        Shell radii (screen units) drawn around `centre` (or the screen centre).
    title : str, optional
    bin_px : int

    Returns
    -------
    matplotlib.figure.Figure
    """
    count_map = np.asarray(count_map)
    n = count_map.shape[0] // bin_px
    binned = count_map[: n * bin_px, : n * bin_px].reshape(n, bin_px, n, bin_px).sum(axis=(1, 3))
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    img = np.ma.masked_less_equal(binned.T, 0)  # Image[ix, iz] -> rows z, columns x
    vmax = max(float(binned.max()), 1.0)
    im = ax.imshow(img, origin="lower", extent=[-1, 1, -1, 1], norm=LogNorm(vmin=1.0, vmax=max(vmax, 1.0 + 1e-9)),
                   cmap="viridis", interpolation="nearest")
    ax.set_facecolor("black")
    x0, z0 = (0.0, 0.0) if centre is None else (float(centre[0]), float(centre[1]))
    if centre is not None:
        ax.plot([x0], [z0], "+", color="red", ms=14, mew=1.5,
                label=f"fitted centre ({512 * x0:+.2f}, {512 * z0:+.2f}) px from the screen centre")
    t = np.linspace(0, 2 * np.pi, 721)
    for j, r in enumerate(radii or ()):
        ax.plot(x0 + r * np.sin(t), z0 + r * np.cos(t), "--", color="white", lw=0.6,
                label="fitted shell radii" if j == 0 else None)
    if centre is not None or radii:
        ax.legend(loc="upper right", fontsize=7)
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    ax.set_xlabel("x (screen units)")
    ax.set_ylabel("z (screen units, polarisation axis)")
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    fig.colorbar(im, ax=ax, label=f"electrons per {bin_px} x {bin_px} px")
    return fig


def spectrum_figure(spec, shells=None, title=None, min_fraction=0.02):
    """Photoelectron spectrum I(R) (top) and beta_2(R), beta_4(R) (bottom) with 1-sigma bands.

    Parameters
    ----------
    spec : sevi_lib.fit.spectrum.Spectrum
    shells : dict, optional
        The fitted shells (a fit sidecar: ``R``, ``se_R``, ``beta``, ``se_beta``): dashed lines
        at their radii, and their beta_2 and beta_4 as points with error bars.
    title : str, optional
    min_fraction : float
        beta's are drawn where I exceeds this fraction of its maximum (elsewhere they are noise).
    """
    fig, (top, bot) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True, gridspec_kw={"height_ratios": [1, 1]})
    top.plot(spec.R, spec.I, color="k", lw=0.8, label="rBasex I(R)")
    top.fill_between(spec.R, spec.I - spec.I_se, spec.I + spec.I_se, color="0.6", alpha=0.5, lw=0)
    top.set_ylabel("electrons per unit R")
    show = spec.I > min_fraction * np.nanmax(spec.I)
    colours = ("tab:blue", "tab:red", "tab:green", "tab:purple")
    for i, (b, s) in enumerate(zip(spec.beta, spec.beta_se)):
        col = colours[i % len(colours)]
        bb = np.where(show, b, np.nan)
        bot.plot(spec.R, bb, color=col, lw=0.8, label=f"beta_{2 * i + 2}(R)")
        bot.fill_between(spec.R, bb - s, bb + s, color=col, alpha=0.25, lw=0)
    if shells is not None:
        R = np.asarray(shells["R"], dtype=np.float64)
        beta = np.asarray(shells["beta"], dtype=np.float64).reshape(len(R), -1)
        se = np.asarray(shells.get("se_beta", np.zeros_like(beta)), dtype=np.float64).reshape(beta.shape)
        for j, r in enumerate(R):
            top.axvline(r, color="tab:orange", ls="--", lw=0.8, label="fitted shells" if j == 0 else None)
            bot.axvline(r, color="tab:orange", ls="--", lw=0.5)
        for i in range(min(len(spec.beta), beta.shape[1])):
            bot.errorbar(R, beta[:, i], yerr=se[:, i], fmt="o", ms=4, color=colours[i % len(colours)], mec="k",
                         label=f"fit beta_{2 * i + 2}")
    bot.axhline(0.0, color="0.5", lw=0.5)
    bot.set_ylabel("beta (I(c) = 1/2 + sum beta P)")
    bot.set_xlabel("R (screen units)")
    top.legend(fontsize=8)
    bot.legend(fontsize=8, ncol=2)
    if title:
        top.set_title(title)
    fig.tight_layout()
    return fig


def _spot_dict(spot):
    """A survey's ``spot`` entry as a dict (a SpotMeasurement or its dict; None stays None)."""
    if spot is None or isinstance(spot, dict):
        return spot
    return spot.to_dict()


def spot_model_figure(spot, title=None, note=None):
    """The camera's spot model a survey measured (camera.json's ``spot``).

    Parameters
    ----------
    spot : sevi_lib.detect.spotmodel.SpotMeasurement or dict or None
        The measurement (or its dict). None: a figure saying that no spot model was measured.
    title : str, optional
        Title over both panels.
    note : str, optional
        A line under the title (the model in use, the reason for no measurement).

    Returns
    -------
    matplotlib.figure.Figure
        Left: the histogram of the isolated spots' gains as spots per count (``gain_hist``:
        ``counts`` over the bin widths, with Poisson error bars), the fitted truncated gamma law's
        density (curve) and its expected counts per bin (dashed steps), the law's mean and cv with
        their standard errors and the histogram's chi^2 in the legend. Right: the mean radial
        profile of the spots (``profile``: value above the pedestal over the peak, against the
        distance from the centre in widths) with the model ``exp(-r^2 / 2)``; the width, its
        spread and their standard errors in the title.
    """
    spot = _spot_dict(spot)
    if spot is None:
        fig, ax = plt.subplots(figsize=(11, 2.6))
        ax.axis("off")
        text = "no spot model measured (too few isolated spots in the sampled frames)"
        ax.text(0.5, 0.5, text + (f"\n{note}" if note else ""), ha="center", va="center", fontsize=11,
                transform=ax.transAxes)
        if title:
            ax.set_title(title)
        return fig
    # local: scipy.special/stats take about a second to import and only this figure needs them
    from scipy.special import gammaincc
    from scipy.stats import gamma as gamma_law

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
    hist = spot.get("gain_hist") or {}
    edges = np.asarray(hist.get("edges", ()), dtype=np.float64)
    counts = np.asarray(hist.get("counts", ()), dtype=np.float64)
    expected = np.asarray(hist.get("expected", ()), dtype=np.float64)
    mean, cv = float(spot["gain_mean"]), float(spot["gain_cv"])
    law = (f"gamma law: mean {mean:.1f} +- {float(spot['gain_mean_se']):.1f} counts,\n"
           f"cv {cv:.3f} +- {float(spot['gain_cv_se']):.3f}; chi2/dof {float(spot['gain_chi2']):.1f}/"
           f"{int(spot['gain_dof'])} (p = {float(spot['gain_p']):.2g})")
    if edges.size >= 2 and counts.size == edges.size - 1:
        width = np.diff(edges)
        n = float(counts.sum())
        left.stairs(counts / width, edges, color="C0", lw=1.0, label=f"{n:.0f} isolated spots")
        mid = 0.5 * (edges[1:] + edges[:-1])
        left.errorbar(mid, counts / width, yerr=np.sqrt(counts) / width, fmt="none", ecolor="C0", lw=0.6)
        if expected.size == counts.size:
            left.stairs(expected / width, edges, color="C1", lw=0.8, ls="--", label="law's expectation per bin")
        floor = float(spot.get("gain_floor", edges[0]))
        k = 1.0 / max(cv, 1e-3) ** 2
        theta = mean / k
        a = np.linspace(floor, edges[-1], 400)
        dens = n * gamma_law.pdf(a, k, scale=theta) / max(float(gammaincc(k, floor / theta)), 1e-300)
        left.plot(a, dens, color="C1", lw=1.2, label=law)
        left.axvline(floor, color="0.5", ls=":", lw=0.8, label=f"floor {floor:g} counts (truncation)")
        left.set_xlim(0.0, edges[-1])
    else:
        left.text(0.5, 0.5, "no gain histogram", ha="center", va="center", transform=left.transAxes)
        left.plot([], [], " ", label=law)
    left.set_xlabel("spot gain (peak, counts)")
    left.set_ylabel("spots per count")
    left.set_title("gain (pulse-height) distribution", fontsize=10)
    left.legend(fontsize=7)
    prof = spot.get("profile") or {}
    r = np.asarray(prof.get("r", ()), dtype=np.float64)
    pm = np.asarray([np.nan if v is None else v for v in prof.get("mean", ())], dtype=np.float64)
    if r.size and pm.size == r.size:
        right.plot(r, pm, "o", ms=3.5, color="C0", label=f"mean of {int(spot['n_spots'])} spots")
    rr = np.linspace(0.0, max(float(r.max()) if r.size else 3.5, 0.5), 300)
    right.plot(rr, np.exp(-0.5 * rr**2), color="C1", lw=1.0, label="model exp(-r^2/2)")
    right.axhline(0.0, color="0.5", lw=0.5)
    right.set_xlabel("distance from the spot centre r (widths)")
    right.set_ylabel("(value - pedestal) / peak")
    right.set_title(f"width {float(spot['sigma_px']):.3f} +- {float(spot['sigma_px_se']):.3f} px (spread "
                    f"{float(spot['sigma_sd_px']):.3f} +- {float(spot['sigma_sd_px_se']):.3f})", fontsize=10)
    right.legend(fontsize=7)
    if title or note:
        fig.suptitle("\n".join(t for t in (title, note) if t), fontsize=10)
    fig.tight_layout()
    return fig


def camera_figure(survey):
    """:func:`spot_model_figure` of a camera survey (:class:`~sevi_lib.detect.camera.CameraSurvey`
    or its JSON dict), titled with the frames sampled and the spot model in use."""
    d = survey if isinstance(survey, dict) else survey.to_dict()
    model = d.get("spot_model") or {}

    m = SpotModel.from_dict(model)
    n = len(d.get("frames_sampled", ()))
    title = f"camera survey: spot model from {n} of {int(d.get('n_file_frames', n))} frames"
    note = (f"in use ({d.get('spot_model_source', 'published')}): width {m.sigma_px:.3f} px, {m.gain} gain mean "
            f"{m.gain_mean:.1f} counts, cv {m.gain_cv:.3f}")
    if d.get("spot") is None:  # the survey's warning says why
        why = [w for w in d.get("warnings", ()) if str(w).startswith("spot model not measured")]
        note = "\n".join([*why[:1], note])
    return spot_model_figure(d.get("spot"), title=title, note=note)
