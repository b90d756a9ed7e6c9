"""The fit's settings: the one place its configurable values have their defaults."""

from __future__ import annotations

from dataclasses import dataclass

from sevi_lib.core.errors import check_settings
from sevi_lib.core.shells import N_BETA

#: Data kinds the fit takes (see :mod:`sevi_lib.fit`).
METHODS = ("unbinned", "binned", "sum")

#: Image-centre modes (a fixed ``(x0, z0)`` pair is accepted by the library functions too).
CENTRES = ("free", "screen")


@dataclass(frozen=True)
class FitSettings:
    """Settings of ``sevi fit`` (the workflow's ``fit:`` section).

    Attributes
    ----------
    method : str or None
        ``unbinned`` (electron table), ``binned`` (count map; electron tables are histogrammed) or
        ``sum`` (raw-frame sum); None: ``unbinned`` for an electron table, ``binned`` for a map.
    n_beta : int
        beta's per shell, beta_2 .. beta_2N.
    shells : int
        Number of shells; 0: automatic, the number of significant peaks of the radial profile
        (:func:`sevi_lib.fit.search.find_shells`).
    centre : str
        ``free``: the image centre (x0, z0) is a fitted parameter; ``screen``: fixed at the
        screen centre (0, 0), the published geometry.
    max_iter : int
        Iterations of the optimiser.
    kernel_spots : int
        Spots rendered for the mean spot of the ``sum`` method (:func:`sevi_lib.fit.framesum.mean_spot`).
    """

    method: str | None = None
    n_beta: int = N_BETA
    shells: int = 0
    centre: str = "free"
    max_iter: int = 60
    kernel_spots: int = 40000

    def __post_init__(self):
        check_settings([
            (self.method is None or self.method in METHODS,
             f"method must be one of {', '.join(METHODS)}, got {self.method!r}"),
            (self.centre in CENTRES, f"centre must be one of {', '.join(CENTRES)}, got {self.centre!r}"),
        ])
        for name, low in (("n_beta", 1), ("shells", 0), ("max_iter", 1), ("kernel_spots", 1)):
            value = getattr(self, name)
            check_settings([(not isinstance(value, bool) and isinstance(value, int) and value >= low,
                             f"{name} must be an integer >= {low}, got {value!r}")])


def min_electrons(n_beta, n_shells):
    """Fewest electrons (or counts, or spot-equivalents) a fit accepts: 10 per free parameter and shell."""
    return 10 * max(int(n_shells or 1), 1) * (n_beta + 3)
