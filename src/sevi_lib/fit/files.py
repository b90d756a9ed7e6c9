"""``sevi fit`` as one library call: read an input file, fit it, write the Answer, sidecar and plot.

Input kinds: an HDF5 electron table (``DetectedElectrons``), or a 1024 x 1024 ``.npy`` map (a count
map, an accumulated camera image, or with method ``sum`` the sum of raw frames). A map fitted with
method ``binned`` is an intensity image (the quasi-likelihood fit of
:func:`sevi_lib.fit.dispersion.fit_intensity_map`) when asked (``intensity=True``, ``sevi fit
--intensity``) or, by default, when it holds a negative or non-integer value
(:func:`~sevi_lib.fit.dispersion.is_intensity`); otherwise it is a count map, fitted as before. Every output is checked before the work
(:func:`sevi_lib.core.io.check_outputs`: not an input, not a directory, writable) and written
atomically.
"""

import json
from pathlib import Path

import numpy as np

from sevi_lib.core.errors import InputError
from sevi_lib.core.geometry import pixel_centres
from sevi_lib.core.io import (
    check_input,
    check_outputs,
    read_detected,
    read_map,
    write_answer,
    write_text,
)
from sevi_lib.core.maps import count_map
from sevi_lib.fit.binned import fit_count_map
from sevi_lib.fit.dispersion import fit_intensity_map, is_intensity
from sevi_lib.fit.framesum import fit_frame_sum, mean_spot
from sevi_lib.fit.settings import FitSettings
from sevi_lib.fit.spectrum import spectrum
from sevi_lib.fit.unbinned import fit_electrons


def output_paths(out, sidecar=None, plot=None):
    """The three outputs: Answer, JSON sidecar (default: `out` with .json), plot (.png; 'none': no plot)."""
    out = Path(out)
    sidecar = Path(sidecar) if sidecar else out.with_suffix(".json")
    plot = None if (plot or "").lower() == "none" else (Path(plot) if plot else out.with_suffix(".png"))
    return out, sidecar, plot


def _pixel_points(img):
    ix, iz = np.nonzero(img)
    centres = pixel_centres()
    return centres[ix], centres[iz], img[ix, iz].astype(np.float64)


def frame_count(det):
    """Frames of an electron table: the number of distinct ``ImageId`` (None without that column).

    A frame with no detected electron is not counted (rare at tens of electrons per frame).
    """
    ids = det.get("ImageId")
    return len(np.unique(ids)) if ids is not None and len(ids) else None


def fit_input(path, settings=None, log=None, intensity=None):
    """Fit the data of one input file.

    Parameters
    ----------
    path : str or Path
        Electron table (.h5) or map (.npy).
    settings : FitSettings, optional
    log : callable, optional
        Receives the optimiser's progress lines.
    intensity : bool, optional
        For a map fitted with method ``binned``: True, an accumulated camera image (intensities;
        quasi-likelihood, :func:`sevi_lib.fit.dispersion.fit_intensity_map`); False, a count map
        (Poisson); None, decided by :func:`sevi_lib.fit.dispersion.is_intensity` (a negative or
        non-integer value). Other inputs and methods take only None.

    Returns
    -------
    result : sevi_lib.fit.result.FitResult
        ``diagnostics["input"]`` names the file.
    points : tuple
        ``(x, z, w)`` of the data for the plot (w None for electrons, pixel weights for maps: an
        intensity image's divided by its phi, in effective electrons).
    method : str
        The method used.
    """
    settings = settings or FitSettings()
    path = Path(path)
    kw = {"n_beta": settings.n_beta, "n_shells": settings.shells, "max_iter": settings.max_iter, "log": log,
          "what": str(path), "centre": settings.centre}
    if path.suffix == ".npy":
        method = settings.method or "binned"
        img = read_map(path)
        if method == "unbinned":
            raise InputError(f"{path}: --method unbinned needs an electron table, not a map")
        if intensity is not None and method != "binned":
            raise InputError(f"{path}: --intensity and --counts apply to the binned fit of a map, not --method {method}")
        if method == "sum":
            kernel = mean_spot(settings.kernel_spots)
            result = fit_frame_sum(img, kernel, **kw)
            x, z, w = _pixel_points(img)
            w = w / kernel.total
        elif (is_intensity(img) if intensity is None else intensity):
            result = fit_intensity_map(img, **kw)
            x, z, w = _pixel_points(img)
            w = w / result.dispersion["scale"]
        else:
            result = fit_count_map(img, **kw)
            x, z, w = _pixel_points(img)
    else:
        method = settings.method or "unbinned"
        if intensity is not None:
            raise InputError(f"{path}: --intensity and --counts apply to a map (.npy), not an electron table")
        if method == "sum":
            raise InputError(f"{path}: --method sum needs the sum of raw frames (.npy), not an electron table")
        det = read_detected(path)
        x, z, w = det["x"], det["z"], None
        kw["n_frames"] = frame_count(det)
        if method == "unbinned":
            result = fit_electrons(x, z, **kw)
        else:
            result = fit_count_map(count_map(x, z), **kw)
    result.diagnostics["input"] = str(path)
    return result, (x, z, w), method


def fit_file(path, out, sidecar=None, settings=None, *, log=None, intensity=None, also_writes=()):
    """Fit one input file and write the Answer and the JSON sidecar.

    The picture of the fit is drawn by the caller (``sevi fit``:
    :func:`sevi_lib.report.plots.fit_report` of the returned points), since drawing is the report
    layer's job; name its path in `also_writes` so that it is checked before the work.

    Parameters
    ----------
    path : str or Path
        Electron table (.h5) or map (.npy).
    out : str or Path
        Answer file (HDF5, the published layout).
    sidecar : str or Path, optional
        JSON with every parameter, standard error and diagnostic (default: `out` with .json).
    settings : FitSettings, optional
    log : callable, optional
    intensity : bool, optional
        As in :func:`fit_input`.
    also_writes : sequence of str or Path
        Other outputs of the caller, checked with these before any work.

    Returns
    -------
    result : sevi_lib.fit.result.FitResult
    points : tuple of ndarray
        ``(x, z, w)`` fitted (w: None for electrons), as :func:`fit_input` returns them.
    method : str

    Raises
    ------
    InputError
        A missing or unreadable input, an output equal to the input or not writable (before any
        work), or data the fit cannot take.
    """
    path = Path(path)
    check_input(path)
    out, sidecar, _ = output_paths(out, sidecar, "none")
    check_outputs([out, sidecar, *also_writes], [path])
    result, points, method = fit_input(path, settings, log, intensity)
    write_answer(out, result.R, result.beta)
    write_text(sidecar, json.dumps(result.to_dict(), indent=1) + "\n")
    return result, points, method


def read_sidecar(path):
    """The fitted shells and centre of a ``sevi fit`` JSON sidecar (InputError naming the file)."""
    path = Path(path)
    check_input(path)
    try:
        side = json.loads(path.read_text())
        shells = {k: np.asarray(side[k], dtype=np.float64) for k in ("R", "se_R", "sigma_R", "beta", "se_beta")}
        centre = np.asarray(side.get("centre", (0.0, 0.0)), dtype=np.float64)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a fit sidecar ({exc.__class__.__name__}: {exc})") from None
    if centre.shape != (2,) or not np.all(np.isfinite(centre)) or not np.all(np.isfinite(shells["R"])):
        raise InputError(f"{path}: centre and R must be finite numbers")
    return shells, centre


def spectrum_table_text(spec):
    """The spectrum as TSV text: comment lines that document the columns, a header, one row per radius."""
    head = [
        "# photoelectron spectrum by rBasex (PyAbel) about the fitted image centre "
        f"({spec.centre[0]:.6f}, {spec.centre[1]:.6f}), one row per one-pixel radius bin",
        "# R: radius (screen units); I: electrons per unit R (integrates to the electron count); I_se: its SE",
        "# betaL, betaL_se: anisotropy, I(c) = 1/2 + sum beta P (the usual 1 + b P normalisation: b = 2 beta)",
        f"# standard errors: standard deviation over {spec.n_boot} Poisson-resampled count maps",
        "\t".join(spec.columns()),
    ]
    rows = ["\t".join(f"{v:.6g}" for v in row) for row in spec.table()]
    return "\n".join(head + rows) + "\n"


def spectrum_file(path, tsv, sidecar=None, *, order=4, n_boot=40, seed=0, also_writes=()):
    """``sevi spectrum``: the photoelectron spectrum of an input file, written as a table.

    The figure is drawn by the caller (``sevi spectrum``:
    :func:`sevi_lib.report.plots.spectrum_figure`); name its path in `also_writes` so that it is
    checked before the work.

    Parameters
    ----------
    path : str or Path
        Electron table (.h5) or count map (.npy).
    tsv : str or Path
        Spectrum table to write (:data:`sevi_lib.fit.spectrum.COLUMNS`, more beta's for higher orders).
    sidecar : str or Path, optional
        ``sevi fit`` JSON sidecar: its centre is the inversion's, its shells are returned for the
        figure (without one, the screen centre and no shells).
    order, n_boot, seed
        As in :func:`sevi_lib.fit.spectrum.spectrum`.
    also_writes : sequence of str or Path
        Other outputs of the caller, checked with `tsv` before any work.

    Returns
    -------
    spec : sevi_lib.fit.spectrum.Spectrum
    shells : dict or None
        The sidecar's shells (:func:`read_sidecar`).
    """
    path = Path(path)
    check_input(path)
    check_outputs([tsv, *also_writes], [path] + ([sidecar] if sidecar else []))
    if order < 2 or order % 2 or n_boot < 0:
        raise InputError(f"order must be even and >= 2 and bootstrap >= 0 (got {order}, {n_boot})")
    shells, centre = read_sidecar(sidecar) if sidecar else (None, np.zeros(2))
    if path.suffix == ".npy":
        x, z, w = _pixel_points(read_map(path))
    else:
        det = read_detected(path)
        x, z, w = det["x"], det["z"], None
    if len(x) == 0:
        raise InputError(f"{path}: no electrons")
    spec = spectrum(x, z, centre=centre, weights=w, order=order, n_boot=n_boot, seed=seed)
    write_text(tsv, spectrum_table_text(spec))
    return spec, shells
