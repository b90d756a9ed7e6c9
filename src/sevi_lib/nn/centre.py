"""The network's input map, recentred on the fitted image centre (``sevi nn centre-map``).

On a lab camera the image centre sits a few pixels off the screen centre. The network does
**not** learn offsets: its synthesis maps are always centred on the screen centre (0, 0), and
its views (:mod:`sevi_lib.nn.views`, e.g. the fold into one quadrant) assume that centre. So
the real electrons are moved onto the screen centre before the network sees them: every
detected position is shifted by ``-(x0, z0)``, the centre fitted by ``sevi fit`` (the
``"centre"`` of its JSON sidecar, screen units), and binned with the project's one count-map
binner (:func:`sevi_lib.core.maps.count_map`). This map replaces the accumulated count map as
the network's input everywhere (the first pass, the electron totals of the synthesis prior with
``electrons: "map"``, prediction), and the fit's radii (``sevi nn predict --radii-from``),
measured from the same centre, stay consistent with it.

The shift moves electrons within a few pixels of the screen's edge off it (dropped, as any
position outside [-1, 1]) and leaves the strip it uncovers empty; shells lie well inside the
screen, so neither touches them. With a centre of exactly (0, 0) the map is the count map of the
unshifted positions, bit for bit.

API
---
``recentred_map(x, z, centre)`` -> 1024 x 1024 float64 count map of ``(x - x0, z - z0)``.
``centre_map_file(electrons, fit_sidecar, out)``: files in (a ``DetectedElectrons`` table, the
    fit's sidecar), the map written atomically to a ``.npy`` file; returns ``(centre, n_binned)``.
"""

import numpy as np

from sevi_lib.core.io import check_outputs, read_detected, save_npy
from sevi_lib.core.maps import count_map
from sevi_lib.nn.inputs import read_centre


def recentred_map(x, z, centre):
    """Count map of screen positions shifted so that `centre` lands on the screen centre.

    Parameters
    ----------
    x, z : array_like of float, shape (n,)
        Detected positions, screen units.
    centre : (float, float)
        Image centre ``(x0, z0)``, screen units.

    Returns
    -------
    ndarray of float64, shape (1024, 1024)
        ``Image[ix, iz]`` counts of ``(x - x0, z - z0)`` (positions shifted off the screen dropped).
    """
    x0, z0 = (float(c) for c in centre)
    x = np.asarray(x, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    return count_map(x - x0, z - z0)


def centre_map_file(electrons, fit_sidecar, out):
    """``sevi nn centre-map``: the recentred count map of a detected-electron table.

    The output is checked first (not an input, writable), then the sidecar's centre is read and
    validated (:func:`sevi_lib.nn.inputs.read_centre`), then the electrons.

    Parameters
    ----------
    electrons : str or Path
        HDF5 file with a ``DetectedElectrons`` table (``sevi accumulate --electrons``).
    fit_sidecar : str or Path
        The fit's JSON sidecar with ``"centre": [x0, z0]``.
    out : str or Path
        Map to write (.npy, 1024 x 1024 float64), atomically.

    Returns
    -------
    centre : tuple of float
        ``(x0, z0)`` used.
    n_binned : int
        Electrons in the map (those shifted off the screen are not).

    Raises
    ------
    InputError
        Bad output path, a sidecar without a finite centre, an unreadable electron table.
    """
    check_outputs([out], [electrons, fit_sidecar])
    centre = read_centre(fit_sidecar)
    table = read_detected(electrons)
    m = recentred_map(table["x"], table["z"], centre)
    save_npy(out, m)
    return centre, int(m.sum())
