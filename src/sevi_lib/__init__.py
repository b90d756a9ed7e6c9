"""sevi_lib: slow-electron velocity-map imaging, from camera frames to angular distributions.

Modules, one concept each:

- :mod:`sevi_lib.core.geometry`   screen/pixel geometry constants and conversions
- :mod:`sevi_lib.core.angular`    Legendre angular distributions (density, CDF, physicality)
- :mod:`sevi_lib.core.shells`     the two-shell parameter set
- :mod:`sevi_lib.simulate.electrons`   electron simulator (numba)
- :mod:`sevi_lib.simulate.render`     camera-frame renderer reproducing the published spot model (numba)
- :mod:`sevi_lib.core.io`         HDF5 layouts, streaming frame reader/writer, atomic writes
- :mod:`sevi_lib.core.score`      the grader's per-shell distance
- :mod:`sevi_lib.core.errors`     user-facing exceptions
"""

__version__ = "0.1.0"
