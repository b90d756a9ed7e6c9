"""The whole default workflow at the real size: 50000 frames, both methods, on this machine.

Copies the workflow into ``--workdir`` (default ``results-full/``, kept for inspection), sets
``simulation.n_frames`` (default 50000: the published size, about 1.8 million rendered electrons
per shell) and runs ``snakemake --cores N`` on the embedded default: simulate (gzip-9 frames,
the published layout), 10 detection shards, accumulate, fit, calibrate, the network (synthesis,
pretraining, fine-tuning, prediction), score and report. Then it prints

- per rule: jobs, summed wall time, summed CPU time, the longest job and its peak memory
  (Snakemake's ``benchmark:`` files; max_rss), and the whole job's wall time;
- the critical path: the longest chain of jobs through the workflow's job graph (``snakemake
  --forceall --d3dag``), each job weighted by its wall time, i.e. the time from frames to answer
  on a machine or cluster with as many cores as the widest stage. Jobs of a sharded rule
  (detect, calibrate_shard, synth) are not told apart in that graph, so each counts as the rule's
  longest job; jobs of one rule that depend on each other (fine-tuning rounds) take the rule's
  benchmark files in name order;
- per shell, the distance to the truth of every answer in ``results/score.tsv`` (the calibrated
  fit, the uncorrected fit, the network), the fit's reported expected distance, and the same fit
  (``sevi fit``, same settings) of the TRUE electron positions of the same file (the truth file's
  DetectedElectrons), with the ratio answer / true-position fit.

With ``--file-first`` the test file is made first (``snakemake simulate``), and the timed run
starts from the file, as a lab's run would: the whole job's wall time is then frames to answers
(without it, the network's pretraining synthesis overlaps the test file's simulation).

Run:  python benchmarks/bench_full_job.py [--frames 50000] [--cores 2] [--workdir DIR] [--file-first]
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


def run_workflow(wd, args):
    """Run ``snakemake ARGS`` in the run folder `wd` (log in ``snakemake.log``).

    Returns the wall time in seconds (also written to ``wall_seconds.txt``), or None when
    Snakemake failed (the reason printed on stderr).
    """
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "snakemake", *args]
    with open(wd / "snakemake.log", "w") as log:
        rc = subprocess.run(cmd, cwd=wd, stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - t0
    if rc != 0:
        print(f"snakemake failed (exit {rc}); see {wd / 'snakemake.log'}", file=sys.stderr)
        return None
    (wd / "wall_seconds.txt").write_text(f"{wall:.1f}\n")
    return wall


def _rule_of(rel):
    rule = rel.parts[0] if len(rel.parts) > 1 else rel.stem
    if rule == "nn":
        rule = rel.stem.split("_")[0]
    return "calibrate_shard" if rule == "calibrate" and len(rel.parts) > 1 else (
        "detect" if rule == "detect" else rule)


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def job_times(folder):
    """Rule -> wall seconds of each of its jobs, in benchmark-file name order; and CPU seconds."""
    wall, cpu = {}, {}
    for path in sorted(Path(folder).rglob("*.tsv")):
        with open(path) as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        rule = _rule_of(path.relative_to(folder))
        wall.setdefault(rule, []).append(float(row["s"]))
        cpu.setdefault(rule, []).append(_number(row.get("cpu_time")))
    return wall, cpu


def _benchmarks(folder):
    """Rule -> (jobs, summed seconds, summed CPU seconds, longest seconds, peak MB)."""
    out = {}
    wall, cpu = job_times(folder)
    peaks = {}
    for path in sorted(Path(folder).rglob("*.tsv")):
        with open(path) as fh:
            rss = _number(next(csv.DictReader(fh, delimiter="\t")).get("max_rss"))
        rule = _rule_of(path.relative_to(folder))
        peaks[rule] = max(peaks.get(rule, 0.0), rss) if rss == rss else peaks.get(rule, 0.0)
    for rule, times in wall.items():
        c = [v for v in cpu[rule] if v == v]
        out[rule] = (len(times), sum(times), sum(c) if c else float("nan"), max(times), peaks.get(rule, 0.0))
    return out


def critical_path(dag, wall):
    """Longest chain of the job graph, each job weighted by its wall time.

    Parameters
    ----------
    dag : dict
        ``snakemake --d3dag`` output: ``nodes`` (``value.rule``) and ``edges`` (``u`` -> ``v``).
    wall : dict
        Rule -> wall seconds of its jobs (:func:`job_times`).

    Returns
    -------
    seconds : float
    chain : list of (rule, seconds)
        From the first job to the last.
    """
    rule = {n["id"]: n["value"]["rule"] for n in dag["nodes"]}
    preds = {i: [] for i in rule}
    for e in dag["edges"]:
        preds[e["v"]].append(e["u"])
    order, seen = [], set()

    def visit(i):
        if i in seen:
            return
        seen.add(i)
        for p in preds[i]:
            visit(p)
        order.append(i)

    for i in rule:
        visit(i)
    # a job's weight: its rule's longest job, or (jobs of one rule chained) the k-th file in order
    depth_in_rule, weight = {}, {}
    for i in order:
        same = [depth_in_rule[p] for p in preds[i] if rule[p] == rule[i]]
        depth_in_rule[i] = (max(same) + 1) if same else 0
        times = wall.get(rule[i], [0.0])
        chained = any(rule[p] == rule[q] for q in rule if rule[q] == rule[i] for p in preds[q])
        weight[i] = times[min(depth_in_rule[i], len(times) - 1)] if chained else max(times)
    finish, best = {}, {}
    for i in order:
        start_from = max(preds[i], key=lambda p: finish[p], default=None)
        finish[i] = weight[i] + (finish[start_from] if start_from is not None else 0.0)
        best[i] = start_from
    end = max(finish, key=finish.get)
    chain = []
    while end is not None:
        chain.append((rule[end], weight[end]))
        end = best[end]
    return max(finish.values()), chain[::-1]


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
    ap.add_argument("--file-first", action="store_true",
                    help="make the test file first and time the run from frames to answers")
    args = ap.parse_args(argv)
    wd = Path(args.workdir)
    wall = None
    if not args.collect:
        copy_workflow(wd)
        (wd / "full.yaml").write_text(yaml.safe_dump({"simulation": {"n_frames": args.frames}}))
        if args.file_first and run_workflow(wd, ["simulate", "--cores", str(args.cores),
                                                 "--configfile", "full.yaml"]) is None:
            return 1
        wall = run_workflow(wd, ["--cores", str(args.cores), "--configfile", "full.yaml"])
        if wall is None:
            return 1
    elif (wd / "wall_seconds.txt").exists():
        wall = float((wd / "wall_seconds.txt").read_text())
    res = wd / "results"
    what = "frames to answers (the test file made before)" if args.file_first else "whole job"
    print(f"frames: {args.frames}, cores: {args.cores}, {what}: " + (f"{wall / 60:.1f} min" if wall else "?"))
    print(f"{'rule':<16}{'jobs':>5}{'wall s':>9}{'CPU s':>9}{'longest s':>11}{'peak MB':>9}")
    table = _benchmarks(res / "benchmarks")
    for rule, (n, tot, cpu, longest, peak) in sorted(table.items(), key=lambda kv: -kv[1][1]):
        print(f"{rule:<16}{n:>5}{tot:>9.0f}{cpu:>9.0f}{longest:>11.0f}{peak:>9.0f}")
    print(f"{'all':<16}{sum(v[0] for v in table.values()):>5}{sum(v[1] for v in table.values()):>9.0f}"
          f"{sum(v[2] for v in table.values() if v[2] == v[2]):>9.0f}")
    dag = subprocess.run([sys.executable, "-m", "snakemake", "--forceall", "--d3dag", "--configfile", "full.yaml"],
                         cwd=wd, capture_output=True, text=True, check=True).stdout
    seconds, chain = critical_path(json.loads(dag[dag.index("{"):]), job_times(res / "benchmarks")[0])
    print(f"critical path (as many cores as the widest stage): {seconds:.0f} s = "
          + " > ".join(f"{r} {t:.0f}" for r, t in chain if t > 0))
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
