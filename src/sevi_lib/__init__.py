"""sevi_lib: slow-electron velocity-map imaging, from camera frames to angular distributions.

Modules, one concept each:

- :mod:`sevi_lib.geometry`   screen/pixel geometry constants and conversions
- :mod:`sevi_lib.angular`    Legendre angular distributions (density, CDF, physicality)
- :mod:`sevi_lib.shells`     the two-shell parameter set
- :mod:`sevi_lib.simulate`   electron simulator (numba)
- :mod:`sevi_lib.render`     camera-frame renderer reproducing the published spot model (numba)
- :mod:`sevi_lib.io`         HDF5 layouts, streaming frame reader/writer, atomic writes
- :mod:`sevi_lib.score`      the grader's per-shell distance
- :mod:`sevi_lib.errors`     user-facing exceptions
"""

__version__ = "0.1.0"
