"""One GPU per job: device slots held by lock files.

Snakemake schedules GPU jobs with a counting resource (``resources: gpu=1`` in a rule, and
``--resources gpu=4`` on the command line on a four-GPU machine) but tells a job neither which
device it should use nor a slot index. This module supplies the missing slot:

- the visible devices are those listed in ``CUDA_VISIBLE_DEVICES`` if it is set (so a user can
  hand the workflow a subset, e.g. ``CUDA_VISIBLE_DEVICES=2,3``), otherwise all devices that
  ``nvidia-smi -L`` lists (none if it is missing);
- a job takes an exclusive, non-blocking ``flock`` on ``<lock_dir>/gpu<ID>.lock`` for the first
  visible device ID whose lock is free, and runs with ``CUDA_VISIBLE_DEVICES=ID`` (inside the
  job that device is ``cuda:0``);
- the lock lives as long as the process holding it: the kernel drops it when the job ends, is
  killed or crashes, so no stale lock ever blocks a later run;
- if every device is taken (more concurrent GPU jobs than devices, i.e. ``--resources gpu=``
  larger than the device count) the job waits, polling, until one frees up;
- with no device at all the job runs unchanged (on the CPU) without any lock;
- inside a SLURM job (``SLURM_JOB_ID`` set) the job also runs unchanged without a lock: SLURM
  has already given it its GPUs to itself (``--gpus``), and every job on every node sees them
  as device 0, so a lock file on the shared file system would make jobs on different nodes wait
  for each other for nothing.

So four concurrent jobs under ``--resources gpu=4`` on a four-GPU machine land on four different
devices. ``sevi nn gpu-run --lock-dir DIR -- COMMAND ...`` wraps a command this way.
"""

import contextlib
import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path


def visible_devices(environ=None):
    """Device identifiers a job may use.

    Parameters
    ----------
    environ : mapping, optional
        Environment to read (default ``os.environ``).

    Returns
    -------
    list of str
        The entries of ``CUDA_VISIBLE_DEVICES`` if set (empty entries dropped; ``-1`` or an
        empty string mean none), else ``"0" .. "n-1"`` for the n GPUs ``nvidia-smi -L`` lists.
    """
    env = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in env:
        ids = [d.strip() for d in env["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()]
        return [] if ids and ids[0] == "-1" else ids
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(l for l in out.splitlines() if l.startswith("GPU "))]


@contextlib.contextmanager
def gpu_slot(lock_dir, devices=None, poll=2.0):
    """Hold one device slot for the duration of the block.

    Parameters
    ----------
    lock_dir : str or Path
        Folder of the lock files (created if needed); jobs that should not share devices must
        use the same folder.
    devices : list of str, optional
        Device identifiers to choose from (default :func:`visible_devices`).
    poll : float
        Seconds between attempts while every slot is taken.

    Yields
    ------
    str or None
        The device identifier held (to put in ``CUDA_VISIBLE_DEVICES``), or None when there is
        no device (CPU run, nothing locked).
    """
    if os.environ.get("SLURM_JOB_ID"):  # the scheduler already gave this job its devices
        yield None
        return
    devices = visible_devices() if devices is None else list(devices)
    if not devices:
        yield None
        return
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    while True:
        for dev in devices:
            fd = os.open(lock_dir / f"gpu{dev}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            try:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()} {dev}\n".encode())
                yield dev
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            return
        time.sleep(poll)


def run_on_slot(command, lock_dir, devices=None, poll=2.0):
    """Run `command` (a list) holding a device slot, with ``CUDA_VISIBLE_DEVICES`` set to it.

    Returns
    -------
    int
        The command's exit status.
    """
    with gpu_slot(lock_dir, devices=devices, poll=poll) as dev:
        env = dict(os.environ)
        if dev is not None:
            env["CUDA_VISIBLE_DEVICES"] = dev
        return subprocess.run(command, env=env, check=False).returncode
