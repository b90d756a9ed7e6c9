"""The whole default workflow at the real size: 50000 frames, both methods, on this machine.

Copies the workflow into ``--workdir`` (default ``results-full/``, kept for inspection), sets
``simulation.n_frames`` (default 50000: the published size, about 1.8 million rendered electrons
per shell) and runs ``snakemake --cores N`` on the embedded default: simulate (gzip-9 frames,
the published layout), 10 detection shards, accumulate, fit, calibrate, the network (synthesis,
pretraining, fine-tuning, prediction), score and report. Then it prints

- per rule: jobs, summed wall time, the longest job and its peak memory (Snakemake's
  ``benchmark:`` files; max_rss), and the whole job's wall time;
- per shell, the distance to the truth of every answer in ``results/score.tsv`` (the calibrated
  fit, the uncorrected fit, the network), the fit's reported expected distance, and the same fit
  (``sevi fit``, same settings) of the TRUE electron positions of the same file (the truth file's
  DetectedElectrons), with the ratio answer / true-position fit.

Run:  python benchmarks/bench_full_job.py [--frames 50000] [--cores 2] [--workdir DIR]
      (--frames 300 for a smoke run; --collect only re-reads a finished workdir)
"""

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def copy_workflow(dest):
    """Copy the Snakefile, workflow, config and profiles into `dest` (a run folder)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "workflow", "config", "profiles"):
        src, dst = ROOT / name, dest / name
        if dst.exists():
            shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)


def _benchmarks(folder):
    """Rule -> (jobs, summed seconds, longest seconds, peak MB of the longest-memory job)."""
    out = {}
    for path in sorted(Path(folder).rglob("*.tsv")):
        rel = path.relative_to(folder)
        rule = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        if rule == "nn":
            rule = rel.stem.split("_")[0]
        with open(path) as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        s, rss = float(row["s"]), float(row["max_rss"]) if row["max_rss"] not in ("", "NA", "-") else float("nan")
        n, tot, longest, peak = out.get(rule, (0, 0.0, 0.0, 0.0))
        out[rule] = (n + 1, tot + s, max(longest, s), max(peak, rss) if rss == rss else peak)
    return out


def read_score(path):
    """Rows of a score TSV by method."""
    with open(path) as fh:
        return {row["method"]: row for row in csv.DictReader(fh, delimiter="\t")}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=50000)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--workdir", default=str(ROOT / "results-full"))
    ap.add_argument("--collect", action="store_true", help="only read the results of a finished run")
    args = ap.parse_args(argv)
    wd = Path(args.workdir)
    wall = None
    if not args.collect:
        copy_workflow(wd)
        (wd / "full.yaml").write_text(yaml.safe_dump({"simulation": {"n_frames": args.frames}}))
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "snakemake", "--cores", str(args.cores), "--configfile", "full.yaml"]
        with open(wd / "snakemake.log", "w") as log:
            rc = subprocess.run(cmd, cwd=wd, stdout=log, stderr=subprocess.STDOUT).returncode
        wall = time.perf_counter() - t0
        if rc != 0:
            print(f"snakemake failed (exit {rc}); see {wd / 'snakemake.log'}", file=sys.stderr)
            return rc
        (wd / "wall_seconds.txt").write_text(f"{wall:.1f}\n")
    elif (wd / "wall_seconds.txt").exists():
        wall = float((wd / "wall_seconds.txt").read_text())
    res = wd / "results"
    print(f"frames: {args.frames}, cores: {args.cores}, whole job: " + (f"{wall / 60:.1f} min" if wall else "?"))
    print(f"{'rule':<12}{'jobs':>5}{'sum s':>9}{'longest s':>11}{'peak MB':>9}")
    for rule, (n, tot, longest, peak) in sorted(_benchmarks(res / "benchmarks").items(), key=lambda kv: -kv[1][1]):
        print(f"{rule:<12}{n:>5}{tot:>9.0f}{longest:>11.0f}{peak:>9.0f}")
    # the same fit of the true electron positions of the same file
    true_ans = wd / "true_positions.h5"
    if not true_ans.exists():
        subprocess.run(["sevi", "fit", str(res / "simulate/truth.h5"), "--out", str(true_ans),
                        "--sidecar", str(wd / "true_positions.json")], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["sevi", "score", str(true_ans), str(res / "simulate/truth.h5"), "--names", "true_positions",
                    "--tsv", str(wd / "true_score.tsv")], check=True, stdout=subprocess.DEVNULL)
    rows = {**read_score(res / "score.tsv"), **read_score(wd / "true_score.tsv")}
    side = json.loads((res / "answer/fit.json").read_text())
    cal = json.loads((res / "answer/fit_calibrated.json").read_text())
    shells = len(side["R"])
    print("\ndistance to the truth per shell (ratio to the fit of the true positions)")
    for method, row in rows.items():
        d = [float(row[f"d_{j}"]) for j in range(shells)]
        t = [float(rows["true_positions"][f"d_{j}"]) for j in range(shells)]
        print(f"{method:<16}" + "  ".join(f"{d[j]:.4f} ({d[j] / t[j]:.2f}x)" for j in range(shells)))
    print("expected distance: uncorrected fit " + " ".join(f"{v:.4f}" for v in side["expected_distance"])
          + ", calibrated " + " ".join(f"{v:.4f}" for v in cal["expected_distance"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
