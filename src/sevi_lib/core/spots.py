"""The camera's spot model: how one electron lights the frame (width, shape, gain).

Each electron at pixel position (a, b) lights a spot
``A exp(-[(x - a)^2 + (z - b)^2 + 2 rho (x - a)(z - b)] / (2 s^2))`` with, independently per
electron,

- the gain (peak) ``A``: ``"normal"``: Normal(gain_mean, (gain_cv gain_mean)^2) clipped at 0
  (the published generator: 100, cv 0.1); ``"gamma"``: Gamma with that mean and coefficient of
  variation (shape ``1 / cv^2``). The gamma (Polya) law is the standard model of the pulse
  height of an electron multiplier: a single microchannel plate gives cv near 1 (exponential),
  a chevron or Z-stack in saturation a peaked law with cv 0.13-0.45 (``../shared``'s
  cameras.md); the published N(100, 10) is practically a gamma of cv 0.1. The survey
  (:mod:`sevi_lib.detect.spotmodel`) fits the gamma law, so one family covers every camera.
- the width ``s`` (pixels): Normal(sigma_px, sigma_sd_px^2) (published: 0.015 +- 0.001 screen
  units = 7.68 +- 0.512 px);
- the correlation ``rho``: Normal(0, rho_sd^2) clipped to [-1, 1] (published: 0.1).

:class:`SpotModel` is the one place these defaults live; the renderer
(:mod:`sevi_lib.simulate.render`), the survey and the detector read it.
"""

from __future__ import annotations

import math
from collections import namedtuple
from dataclasses import asdict, dataclass, fields

from sevi_lib.core.geometry import PIX_PER_UNIT

__all__ = ["GAIN_LAWS", "SpotKernel", "SpotModel"]

#: Gain laws by name, with their code in :data:`SpotKernel`.
GAIN_LAWS = {"normal": 0, "gamma": 1}

#: The model as numba kernels read it: ``gain_law`` (code of :data:`GAIN_LAWS`), ``gain_mean``,
#: ``gain_sd`` (counts), ``sigma``, ``sigma_sd`` (screen units), ``rho_sd``.
SpotKernel = namedtuple("SpotKernel", "gain_law gain_mean gain_sd sigma sigma_sd rho_sd")


@dataclass(frozen=True)
class SpotModel:
    """A camera's spot model (see the module docstring); the defaults are the published camera.

    Attributes
    ----------
    sigma_px : float
        Mean spot width (pixels), > 0.
    sigma_sd_px : float
        Standard deviation of the width over electrons (pixels), >= 0.
    rho_sd : float
        Standard deviation of the correlation, in [0, 1].
    gain : str
        Gain law, ``"normal"`` or ``"gamma"``.
    gain_mean : float
        Mean spot peak (counts), > 0.
    gain_cv : float
        Coefficient of variation of the peak, > 0 (normal: >= 0).
    """

    sigma_px: float = 7.68
    sigma_sd_px: float = 0.512
    rho_sd: float = 0.1
    gain: str = "normal"
    gain_mean: float = 100.0
    gain_cv: float = 0.1

    def validate(self):
        """Return self; ``ValueError`` naming the first bad value."""
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "gain":
                if v not in GAIN_LAWS:
                    raise ValueError(f"spot gain law must be one of {', '.join(GAIN_LAWS)}, got {v!r}")
            elif isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"spot {f.name} must be a finite number, got {v!r}")
        checks = [
            (0.5 <= self.sigma_px <= 40.0, f"spot sigma_px must be in [0.5, 40] px, got {self.sigma_px:g}"),
            (0.0 <= self.sigma_sd_px <= 0.5 * self.sigma_px,
             f"spot sigma_sd_px must be in [0, sigma_px / 2], got {self.sigma_sd_px:g}"),
            (0.0 <= self.rho_sd <= 1.0, f"spot rho_sd must be in [0, 1], got {self.rho_sd:g}"),
            (0.0 < self.gain_mean <= 1e5, f"spot gain_mean must be in (0, 1e5] counts, got {self.gain_mean:g}"),
            ((0.0 if self.gain == "normal" else 0.01) <= self.gain_cv <= 3.0,
             f"spot gain_cv must be in [{'0' if self.gain == 'normal' else '0.01'}, 3], got {self.gain_cv:g}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)
        return self

    @property
    def gain_sd(self):
        """Standard deviation of the peak (counts)."""
        return self.gain_mean * self.gain_cv

    @property
    def gamma_shape(self):
        """Shape k of the gamma law of the same mean and cv: ``1 / cv^2``."""
        return 1.0 / (self.gain_cv * self.gain_cv)

    def kernel(self):
        """The :data:`SpotKernel` of this model (widths in screen units, all floats but the law)."""
        self.validate()
        return SpotKernel(GAIN_LAWS[self.gain], float(self.gain_mean), float(self.gain_mean * self.gain_cv),
                          float(self.sigma_px) / PIX_PER_UNIT, float(self.sigma_sd_px) / PIX_PER_UNIT,
                          float(self.rho_sd))

    def is_published(self):
        """True for the published generator's model (the defaults)."""
        return self == SpotModel()

    def to_dict(self):
        """Plain dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        """Build from a mapping of some of the fields; ``ValueError`` on an unknown key or a bad value."""
        d = dict(d or {})
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown spot-model key(s) {', '.join(unknown)} (known: {', '.join(sorted(names))})")
        out = {}
        for k, v in d.items():
            if k == "gain":
                out[k] = v
            elif isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"spot {k} must be a number, got {v!r}")
            else:
                out[k] = float(v)
        return cls(**out).validate()
