"""The fit's settings: the one place its configurable values have their defaults."""

from __future__ import annotations

from dataclasses import dataclass

#: Data kinds the fit takes (see :mod:`sevi_lib.fit`).
METHODS = ("unbinned", "binned", "sum")


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
    n_shells : int
        Number of shells.
    max_iter : int
        Iterations of the optimiser.
    kernel_spots : int
        Spots rendered for the mean spot of the ``sum`` method (:func:`sevi_lib.fit.framesum.mean_spot`).
    """

    method: str | None = None
    n_beta: int = 12
    n_shells: int = 2
    max_iter: int = 60
    kernel_spots: int = 40000

    def __post_init__(self):
        if self.method is not None and self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        for name in ("n_beta", "n_shells", "max_iter", "kernel_spots"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def min_electrons(n_beta, n_shells):
    """Fewest electrons (or counts, or spot-equivalents) a fit accepts: 10 per free parameter and shell."""
    return 10 * n_shells * (n_beta + 3)
