import contextlib
import sys
import threading

import pytest

from sevi_lib.nn.gpu_slot import gpu_slot, run_on_slot, visible_devices


def test_visible_devices_from_environment():
    assert visible_devices({"CUDA_VISIBLE_DEVICES": "2, 3"}) == ["2", "3"]
    assert visible_devices({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert visible_devices({"CUDA_VISIBLE_DEVICES": "-1"}) == []


def test_four_holders_get_four_devices_and_a_fifth_waits(tmp_path):
    devices = ["0", "1", "2", "3"]
    with contextlib.ExitStack() as stack:
        held = [stack.enter_context(gpu_slot(tmp_path, devices)) for _ in range(4)]
        assert sorted(held) == devices
        got = []
        t = threading.Thread(target=lambda: got.append(stack2_enter(tmp_path, devices)))
        t.start()
        t.join(0.3)
        assert t.is_alive() and not got  # every slot taken: waits
    # the four slots were released when the stack closed
    t.join(5)
    assert got and got[0] in devices


def stack2_enter(lock_dir, devices):
    with gpu_slot(lock_dir, devices, poll=0.05) as dev:
        return dev


def test_no_device_means_no_lock(tmp_path):
    with gpu_slot(tmp_path / "locks", []) as dev:
        assert dev is None
    assert not (tmp_path / "locks").exists()


def test_run_on_slot_sets_cuda_visible_devices(tmp_path):
    out = tmp_path / "dev.txt"
    code = f"import os; open({str(out)!r}, 'w').write(os.environ['CUDA_VISIBLE_DEVICES'])"
    with gpu_slot(tmp_path, ["7", "8"]) as first:
        assert run_on_slot([sys.executable, "-c", code], tmp_path, ["7", "8"]) == 0
    assert out.read_text() == ({"7", "8"} - {first}).pop()


@pytest.fixture(autouse=True)
def _not_in_slurm(monkeypatch):
    """The tests below (and above) describe a plain machine, even when run inside a SLURM job."""
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)


def test_inside_a_slurm_job_the_scheduler_owns_the_devices(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    with gpu_slot(tmp_path / "locks", devices=["0"]) as dev:
        assert dev is None
    assert not (tmp_path / "locks").exists()
