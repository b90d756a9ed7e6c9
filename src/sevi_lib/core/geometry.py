"""Screen and pixel geometry.

The screen spans [-1, 1] x [-1, 1] in screen units and is imaged on ``N_PIX x N_PIX`` pixels,
``PIX_PER_UNIT`` pixels per unit; the centre lies on the corner between pixels 511 and 512.
Arrays are indexed ``Image[ix, iz]``: axis 0 is x, axis 1 is z (the polarisation axis), which is
what ``numpy.histogram2d(x, z, bins=1024, range=[[-1, 1], [-1, 1]])`` produces.

A *continuous pixel coordinate* p places pixel i on [i, i + 1): ``p = (u + 1) * PIX_PER_UNIT``.
"""

import numpy as np

N_PIX = 1024
PIX_PER_UNIT = N_PIX / 2.0


def screen_to_pixel(u):
    """Continuous pixel coordinate of screen coordinate `u`.

    Parameters
    ----------
    u : float or ndarray
        Screen coordinate in [-1, 1].

    Returns
    -------
    float or ndarray
        ``(u + 1) * PIX_PER_UNIT``; pixel i covers [i, i + 1).
    """
    return (u + 1.0) * PIX_PER_UNIT


def pixel_to_screen(p):
    """Screen coordinate of continuous pixel coordinate `p` (inverse of :func:`screen_to_pixel`).

    Parameters
    ----------
    p : float or ndarray
        Continuous pixel coordinate; pixel i covers [i, i + 1), so its centre is i + 0.5.

    Returns
    -------
    float or ndarray
        ``p / PIX_PER_UNIT - 1``.
    """
    return p / PIX_PER_UNIT - 1.0


def pixel_centres(n=N_PIX):
    """Screen coordinates of the centres of pixels 0 .. n-1 along one axis.

    Parameters
    ----------
    n : int
        Number of pixels (default the full screen, ``N_PIX``).

    Returns
    -------
    ndarray of float64, shape (n,)
        ``pixel_to_screen(i + 0.5)`` for i = 0 .. n-1, i.e. ``(i + 0.5) / PIX_PER_UNIT - 1``.
    """
    return pixel_to_screen(np.arange(n) + 0.5)
