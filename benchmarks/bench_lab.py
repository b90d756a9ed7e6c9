"""A lab-like camera through the whole workflow, with nothing configured but the file.

Makes a lab-like test file with ``sevi simulate --params config/lab.yaml`` (three shells of
different radii and anisotropies, the image centre a few pixels off, stray electrons, read noise
of 1.5 counts, a dozen hot pixels; ``--frames`` frames), then runs the default workflow on it
exactly as a user would: ``snakemake --cores N --config test_images=FRAMES truth=TRUTH``. It
prints

- what the workflow found: the camera survey (noise, hot pixels), the shell count and the shell
  search, the image centre and the flat background, each against the truth;
- per shell, the distance to the truth of every answer in ``results/score.tsv`` and of the same
  fit given the true electron positions, the true centre and the true shell count (the truth
  file's DetectedElectrons, strays included, shifted by the true centre), and their ratio.

Run:  python benchmarks/bench_lab.py [--frames 3000] [--cores 2] [--workdir results-lab]
      (--collect only re-reads a finished workdir)
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from bench_full_job import copy_workflow, read_score, run_workflow  # the same run-folder helpers

ROOT = Path(__file__).resolve().parents[1]


def _simulate(wd, frames):
    params = yaml.safe_load((ROOT / "config/lab.yaml").read_text())
    params["simulation"]["n_frames"] = frames
    (wd / "lab.yaml").write_text(yaml.safe_dump(params))
    data = wd / "data"
    data.mkdir(exist_ok=True)
    if not (data / "truth.h5").exists():
        subprocess.run(["sevi", "simulate", "--params", str(wd / "lab.yaml"), "--frames", str(data / "frames.h5"),
                        "--truth", str(data / "truth.h5"), "--no-progress"], check=True)
    return data / "frames.h5", data / "truth.h5"


def true_position_fit(truth, out):
    """The same fit given the true electron positions, centre and shell count; its Answer at `out`."""
    from sevi_lib.core.io import read_camera_truth, read_detected, read_truth, write_answer
    from sevi_lib.fit import fit_electrons

    cam = read_camera_truth(truth)
    el = read_detected(truth)
    n_shells = read_truth(truth).n_shells
    x0, z0 = cam["centre"]
    res = fit_electrons(el["x"] - x0, el["z"] - z0, n_shells=n_shells, centre="screen")
    write_answer(out, res.R, res.beta)
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--workdir", default=str(ROOT / "results-lab"))
    ap.add_argument("--collect", action="store_true", help="only read the results of a finished run")
    args = ap.parse_args(argv)
    wd = Path(args.workdir)
    wd.mkdir(parents=True, exist_ok=True)
    frames, truth = _simulate(wd, args.frames)
    wall = None
    if not args.collect:
        copy_workflow(wd)
        wall = run_workflow(wd, ["--cores", str(args.cores), "--config", f"test_images={frames}", f"truth={truth}"])
        if wall is None:
            return 1
    elif (wd / "wall_seconds.txt").exists():
        wall = float((wd / "wall_seconds.txt").read_text())
    from sevi_lib.core.io import read_camera_truth, read_truth

    res = wd / "results"
    cam = read_camera_truth(truth)
    t = read_truth(truth)
    print(f"frames: {args.frames}, cores: {args.cores}, whole job: " + (f"{wall / 60:.1f} min" if wall else "?"))
    survey = json.loads((res / "detect/camera.json").read_text())
    print(f"camera survey: read noise {survey['read_noise']:.3f} (true {cam['read_noise']:.3f}), "
          f"hot pixels {len(survey.get('hot_pixels', []))} (true {len(cam['hot_pixels'])})")
    side = json.loads((res / "answer/fit.json").read_text())
    (x0, z0), (sx, sz) = side["centre"], side["centre_se"]
    tx, tz = cam["centre"]
    print(f"shells found: {len(side['R'])} (true {t.n_shells}); centre x0 {512 * x0:+.3f} ± {512 * sx:.3f} px "
          f"(true {512 * tx:+.3f}), z0 {512 * z0:+.3f} ± {512 * sz:.3f} px (true {512 * tz:+.3f})")
    if "background_per_frame" in side:
        print(f"background: {side['background_per_frame']:.3f} ± {side['background_per_frame_se']:.3f} electrons "
              f"per frame (true {cam['stray_electrons']:.3f} strays per frame)")
    ref = wd / "true_positions.h5"
    true_position_fit(truth, ref)
    subprocess.run(["sevi", "score", str(ref), str(truth), "--names", "true_positions", "--tsv",
                    str(wd / "true_score.tsv")], check=True, stdout=subprocess.DEVNULL)
    rows = {**read_score(res / "score.tsv"), **read_score(wd / "true_score.tsv")}
    K = t.n_shells
    base = np.array([float(rows["true_positions"][f"d_{j}"]) for j in range(K)])
    print("\ndistance to the truth per shell (ratio to the fit given the true positions, centre and shell count)")
    for method, row in rows.items():
        d = np.array([float(row[f"d_{j}"]) for j in range(K)])
        print(f"{method:<16}" + "  ".join(f"{d[j]:.4f} ({d[j] / base[j]:.2f}x)" for j in range(K)))
    print("expected distance (fit): " + " ".join(f"{v:.4f}" for v in side["expected_distance"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
