import json

from sevi_lib.nn.rundir import KEY_FILE, prepare_run_dir


def test_prepare_run_dir_outcomes(tmp_path):
    run, data = tmp_path / "run", tmp_path / "a.h5"
    data.write_bytes(b"x")
    assert prepare_run_dir(run, "k1", [data]) == "new"
    record = json.loads((run / KEY_FILE).read_text())
    assert record["key"] == "k1" and record["inputs"][0][:2] == [str(data), 1]
    (run / "last.pt").write_bytes(b"state")
    (run / "checkpoints").mkdir()
    assert prepare_run_dir(run, "k1", [data]) == "resume" and (run / "last.pt").exists()
    assert prepare_run_dir(run, "k2", [data]) == "cleared"
    assert sorted(p.name for p in run.iterdir()) == [KEY_FILE]
    assert prepare_run_dir(run, "k2", [data]) == "new"  # nothing to resume
