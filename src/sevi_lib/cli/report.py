"""``sevi report``: one Markdown page on what a workflow run did and found."""

import csv
import datetime
import json
import os
from pathlib import Path

from sevi_lib.core.errors import InputError
from sevi_lib.core.io import read_answer, read_truth, write_text
from sevi_lib.report.tables import (
    answers_table,
    markdown_table,
    timing_table,
    training_table,
)


def register(sub):
    p = sub.add_parser(
        "report", help="Markdown report of a run (detection, answers side by side, score, training, timing)",
        description="Gather a workflow run's outputs into one Markdown page. Every input is optional; "
        "sections whose files are not given are left out. Images are linked relative to the report.",
    )
    p.add_argument("--out", required=True, help="report to write (.md)")
    p.add_argument("--frames", help="the test file the run analysed (named in the report)")
    p.add_argument("--detect-summary", help="summary.txt from sevi accumulate")
    p.add_argument("--count-map-png", help="picture of the count map")
    p.add_argument("--answer", nargs="+", default=[], metavar="NAME=H5", help="Answer files, one per method")
    p.add_argument("--final", help="name of the method whose answer is the final one")
    p.add_argument("--fit-sidecar", help="JSON sidecar of sevi fit (standard errors, diagnostics)")
    p.add_argument("--fit-png", help="PNG report of sevi fit")
    p.add_argument("--truth", help="truth file (adds the truth and distances)")
    p.add_argument("--score", help="score table (TSV) of the run")
    p.add_argument("--run", nargs="+", default=[], metavar="NAME=RUN_DIR", help="training run folders")
    p.add_argument("--benchmarks", help="folder of Snakemake benchmark files (results/benchmarks)")
    p.set_defaults(func=run)


def _pairs(items, flag):
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise InputError(f"{flag}: expected NAME=PATH, got {item!r}")
        out[name] = path
    return out


def _rel(path, out):
    return os.path.relpath(path, Path(out).parent)


def _read_tsv(path):
    try:
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh, delimiter="\t" if str(path).endswith(".tsv") else ","))
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None


def _benchmarks(folder):
    out = {}
    for f in sorted(Path(folder).rglob("*.tsv")):
        rows = _read_tsv(f)
        if rows:
            name = str(f.relative_to(folder).with_suffix(""))
            out[name] = (float(rows[0]["s"]), float(rows[0].get("max_rss") or "nan"))
    return out


def run(args):
    out = args.out
    parts = [f"# sevi report\n\nWritten {datetime.datetime.now():%Y-%m-%d %H:%M}"
             + (f" for `{args.frames}`." if args.frames else ".")]

    if args.detect_summary:
        try:
            text = Path(args.detect_summary).read_text()
        except OSError as exc:
            raise InputError(f"{args.detect_summary}: cannot read ({exc.strerror})") from None
        parts.append("## Detection\n\n```\n" + text.rstrip() + "\n```")
    if args.count_map_png:
        parts.append(f"![count map]({_rel(args.count_map_png, out)})")

    answers = {}
    for name, path in _pairs(args.answer, "--answer").items():
        a = read_answer(path)
        answers[name] = (a["R"], a["beta"])
    if answers:
        se = {}
        if args.fit_sidecar and "fit" in answers:
            try:
                side = json.loads(Path(args.fit_sidecar).read_text())
            except (OSError, ValueError) as exc:
                raise InputError(f"{args.fit_sidecar}: cannot read the fit sidecar ({exc})") from None
            se["fit"] = (side["se_R"], side["se_beta"])
        truth = None
        if args.truth:
            t = read_truth(args.truth)
            truth = (t.R, t.beta)
        final = f" The final answer (`results/final.h5`) is **{args.final}**'s." if args.final else ""
        parts.append("## Answers side by side\n\nStandard errors where the method gives them." + final
                     + "\n\n" + answers_table(answers, truth=truth, se=se))

    if args.score:
        rows = _read_tsv(args.score)
        if rows:
            parts.append("## Score\n\nPer-shell distance d_j (the grader's), their sum, and R differences.\n\n"
                         + markdown_table(list(rows[0]), [list(r.values()) for r in rows]))

    if args.fit_sidecar:
        side = json.loads(Path(args.fit_sidecar).read_text())
        rows = [[j, f"{side['sigma_R'][j]:.5f} ± {side['se_sigma_R'][j]:.5f}", f"{side['weights'][j]:.0f}",
                 f"{side['expected_distance'][j]:.4f}", f"{side['floor'][j]:.4f}",
                 "yes" if side["constraint_active"][j] else "no"] for j in range(len(side["R"]))]
        parts.append(f"## Fit ({side['method']})\n\n{side['n_iter']} iterations, "
                     + ("converged" if side["converged"] else "**not converged**") + ".\n\n"
                     + markdown_table(["shell", "sigma_R", "electrons", "expected distance", "floor (known angles)",
                                       "I >= 0 constraint active"], rows))
    if args.fit_png:
        parts.append(f"![fit]({_rel(args.fit_png, out)})")

    runs = _pairs(args.run, "--run")
    if runs:
        table = training_table({name: _read_tsv(Path(d) / "metrics.csv") for name, d in runs.items()})
        curves = "\n".join(f"![{name}]({_rel(Path(d) / 'loss.png', out)})" for name, d in runs.items()
                           if (Path(d) / "loss.png").exists())
        parts.append("## Network training\n\nDistances are the score (sum over both shells) on the synthetic "
                     "validation maps.\n\n" + table + ("\n\n" + curves if curves else ""))

    if args.benchmarks and Path(args.benchmarks).is_dir():
        parts.append("## Where the time went\n\nWall time of each job (Snakemake `benchmark:` files).\n\n"
                     + timing_table(_benchmarks(args.benchmarks)))

    write_text(out, "\n\n".join(parts) + "\n")
    print(f"sevi report: wrote {out}")
    return 0
