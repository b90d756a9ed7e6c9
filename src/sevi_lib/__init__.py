"""sevi_lib: slow-electron velocity-map imaging, from camera frames to angular distributions.

One subpackage per stage of the workflow (``workflow/rules/<stage>.smk``), tests in
``tests/<stage>/``; lower layers never import higher ones::

    core      errors, geometry, angular (Legendre densities), shells, score, io (HDF5 layouts,
              streaming frame reader/writer, atomic writes), maps (count-map binner, fold,
              radial profile)
    simulate  electron sampler and the published spot model's renderer (the embedded default)
    detect    electrons in camera frames: blobs, spot-mixture fit, shards and their accumulation
    fit       maximum-likelihood fit of the projected shell model (electrons, count map, frame sum)
    calibrate the detector's response measured by simulation, and the answer corrected for it
    nn        the seed team's method: priors, synthesis, views, network, training, prediction
              (the only subpackage that imports torch)
    report    tables and figures of a run
    cli       the ``sevi`` command, one thin module per subcommand

Importing the package points numba's cache at a folder keyed by the hash of the code numba
compiles (:mod:`sevi_lib._numba_cache`), so an edited kernel is never served stale from the cache
and an edit that changes no compiled code recompiles nothing.
"""

from pathlib import Path as _Path

from sevi_lib import _numba_cache

__version__ = "0.1.0"

_numba_cache.configure(_Path(__file__).parent)
