"""What the Snakemake workflow checks before any job runs (used by ``workflow/rules/common.smk``).

Kept in the library so that the rule files stay small and the checks are tested like any other
code. Every problem is a :class:`~sevi_lib.core.errors.InputError` whose message names the config
key and the path; ``common.smk`` prints it as one ``sevi: error: ...`` line and exits with status 2.
"""

import os

import h5py

from sevi_lib.core.errors import InputError

def check_input_file(key, path, datasets):
    """Check that config value `key` names a readable HDF5 file holding one of `datasets`.

    Parameters
    ----------
    key : str
        The config key (for the message), e.g. ``"test_images"``.
    path : str
        The file.
    datasets : sequence of str
        Dataset names, any one of which must be present as a dataset.

    Raises
    ------
    InputError
        ``config KEY: PATH: problem`` (missing, a directory, unreadable, not HDF5, no dataset).
    """
    where = f"config {key}: {path}"
    if not os.path.exists(path):
        raise InputError(f"{where}: no such file")
    if os.path.isdir(path):
        raise InputError(f"{where}: is a directory, not an HDF5 file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{where}: not readable (permission denied)")

    try:
        with h5py.File(path, "r") as f:
            found = [name for name in datasets if isinstance(f.get(name, getlink=False), h5py.Dataset)]
            names = sorted(f.keys())
    except OSError:
        raise InputError(f"{where}: not a readable HDF5 file") from None
    if not found:
        raise InputError(f"{where}: no dataset {' or '.join(datasets)} (found: {', '.join(names) or 'nothing'})")


def file_identity(path):
    """A cheap identity of a file's contents: ``"<size>:<fingerprint>"``.

    Detection depends on it (a rule param), so a different file at the same path, or new
    contents, reruns detection and everything after it; touching a file does not. The
    fingerprint is :func:`sevi_lib.core.io.file_fingerprint` (the one shards record).

    Parameters
    ----------
    path : str

    Returns
    -------
    str
    """
    # local: core.io loads numba (through core.shells); the Snakefile imports this module on every run
    from sevi_lib.core.io import file_fingerprint

    return f"{os.path.getsize(path)}:{file_fingerprint(path)[:32]}"
