"""Input views: what the network sees of a count map.

A *view* is a pure function from a count map (``Image[ix, iz]``, shape (1024, 1024), counts of
electrons per pixel in the ``numpy.histogram2d`` convention) to a float32 array (C, H, W). The
same view is applied to the synthetic maps at synthesis time and to the real accumulated map at
prediction time, so the network never sees anything else.

Steps, in order:

- ``fold`` (optional): the projected distribution is symmetric under x -> -x and z -> -z, so
  the four quadrants are summed onto one, 512 x 512, index 0 nearest the centre
  (``folded[i, k] = sum of Image[511 - i or 512 + i, 511 - k or 512 + k]``). Nothing is lost
  for a symmetric source; the shot noise per pixel drops by 2.
- ``downsample`` by an integer factor k (default 1): sums of k x k blocks.
- normalisation: the map is divided by its total and multiplied by ``scale`` (default 255),
  as the seed team did ("sum-normalised, times 255"). Every output therefore sums to `scale`:
  folding and downsampling conserve counts, and the normalisation removes the total, so the
  network's input does not depend on how many electrons were collected (only the noise does).

Named views: ``full`` (1024 x 1024, the seed team's input), ``fold`` (512 x 512), and any of
them with a downsampling factor, e.g. ``{"name": "fold", "downsample": 4}`` (128 x 128).
"""

from dataclasses import dataclass

import numpy as np

from sevi_lib.core.errors import InputError
from sevi_lib.core.geometry import N_PIX
from sevi_lib.core.maps import fold

VIEW_NAMES = ("full", "fold")


@dataclass(frozen=True)
class View:
    """An input view (see the module docstring).

    Attributes
    ----------
    name : {"full", "fold"}
        Whether the four quadrants are folded onto one.
    downsample : int
        Block-sum factor k >= 1; must divide the (folded) side.
    scale : float
        The output sums to this value.
    """

    name: str = "full"
    downsample: int = 1
    scale: float = 255.0

    def __post_init__(self):
        if self.name not in VIEW_NAMES:
            raise InputError(f"view: unknown name {self.name!r}, expected one of {', '.join(VIEW_NAMES)}")
        k = int(self.downsample)
        side = N_PIX // 2 if self.name == "fold" else N_PIX
        if k < 1 or side % k:
            raise InputError(f"view: downsample factor {self.downsample!r} must be a positive divisor of {side}")
        if not self.scale > 0:
            raise InputError(f"view: scale {self.scale!r} must be positive")
        object.__setattr__(self, "downsample", k)
        object.__setattr__(self, "scale", float(self.scale))

    @property
    def shape(self):
        """Output shape (C, H, W)."""
        side = (N_PIX // 2 if self.name == "fold" else N_PIX) // self.downsample
        return (1, side, side)

    @classmethod
    def from_config(cls, cfg):
        """Build from ``{"name": ..., "downsample": ..., "scale": ...}`` (missing keys: defaults)."""
        if isinstance(cfg, str):
            return cls(name=cfg)
        try:
            return cls(**dict(cfg or {}))
        except TypeError as exc:
            raise InputError(f"view: bad configuration {cfg!r} ({exc})") from None

    def to_config(self):
        """The inverse of :meth:`from_config`."""
        return {"name": self.name, "downsample": self.downsample, "scale": self.scale}

    def __call__(self, count_map):
        """Apply the view; see :func:`apply_view`."""
        return apply_view(count_map, self)


def downsample(count_map, k):
    """Sum k x k blocks.

    Parameters
    ----------
    count_map : ndarray, shape (..., H, W)
        H and W divisible by `k`.
    k : int

    Returns
    -------
    ndarray, shape (..., H // k, W // k)
        Block sums; the total is conserved.
    """
    a = np.asarray(count_map)
    if k == 1:
        return a
    h, w = a.shape[-2:]
    if h % k or w % k:
        raise InputError(f"view: downsample factor {k} does not divide the map shape {a.shape[-2:]}")
    return a.reshape(a.shape[:-2] + (h // k, k, w // k, k)).sum(axis=(-3, -1))


def apply_view(count_map, view):
    """Transform a count map into the network's input.

    Parameters
    ----------
    count_map : ndarray, shape (1024, 1024)
        Electron counts per pixel, ``Image[ix, iz]``.
    view : View

    Returns
    -------
    ndarray of float32, shape ``view.shape`` = (1, H, W)
        Sums to ``view.scale`` (all zeros for an empty map).
    """
    a = np.asarray(count_map)
    if a.shape != (N_PIX, N_PIX):
        raise InputError(f"view: a count map must be {N_PIX} x {N_PIX}, got {a.shape}")
    if view.name == "fold":
        a = fold(a)
    a = downsample(a, view.downsample).astype(np.float64, copy=False)
    total = a.sum()
    out = a * (view.scale / total) if total > 0 else np.zeros_like(a)
    return out.astype(np.float32)[None]
