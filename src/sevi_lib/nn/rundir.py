"""Training run folders kept for resuming only while their settings and inputs are unchanged.

``sevi train`` resumes from ``RUN_DIR/last.pt``. The workflow reruns a training rule when its
settings or shards change, and that rerun must start afresh rather than resume (or be refused
by) a run made with other settings. :func:`prepare_run_dir` decides: it records the run's key
(the training settings, as text) and its input files (path, size, modification time) in
``RUN_DIR/run_key.json``, and empties the folder when the record differs.
"""

import json
import os
import shutil
from pathlib import Path

from sevi_lib.core.errors import InputError
from sevi_lib.core.io import write_text

#: The record of a run folder's key and inputs.
KEY_FILE = "run_key.json"


def run_record(key, inputs):
    """The text recorded in ``run_key.json`` for a key and input files (sorted by path).

    Raises
    ------
    InputError
        An input that cannot be read.
    """
    files = []
    for f in sorted(str(p) for p in inputs):
        try:
            st = os.stat(f)
        except OSError as exc:
            raise InputError(f"{f}: cannot read ({exc.strerror})") from None
        files.append([f, st.st_size, st.st_mtime_ns])
    return json.dumps({"key": key, "inputs": files}, indent=1, sort_keys=True)


def prepare_run_dir(run_dir, key, inputs=()):
    """Keep `run_dir` for resuming if it records the same key and inputs, else empty it.

    Parameters
    ----------
    run_dir : str or Path
    key : str
        Text identifying the run's settings (e.g. its training options as JSON).
    inputs : iterable of str or Path
        Files the run reads (shards).

    Returns
    -------
    str
        ``"cleared"`` (the folder held another run: emptied), ``"resume"`` (same key and inputs
        and a ``last.pt`` to resume from) or ``"new"``.
    """
    run_dir = Path(run_dir)
    record = run_record(key, inputs)
    key_file = run_dir / KEY_FILE
    outcome = "new"
    if run_dir.exists() and not (key_file.exists() and key_file.read_text() == record):
        for child in run_dir.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        outcome = "cleared"
    elif (run_dir / "last.pt").exists():
        outcome = "resume"
    write_text(key_file, record)
    return outcome
