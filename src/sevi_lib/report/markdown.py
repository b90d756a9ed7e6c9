"""The whole ``results/report.md`` of a run, built from the paths of the run's outputs.

:func:`build_report` reads whatever files it is given (every one is optional; a section whose
files are missing is left out) and assembles the sections with the table builders of
:mod:`sevi_lib.report.tables`; :func:`write_report` writes it atomically. ``sevi report`` only
parses its flags and calls :func:`write_report`.
"""

import csv
import datetime
import json
import os
from pathlib import Path

import numpy as np

from sevi_lib.core.angular import distance_weights
from sevi_lib.core.errors import InputError
from sevi_lib.core.io import check_outputs, read_answer, read_truth, write_text
from sevi_lib.report.tables import (
    answers_table,
    markdown_table,
    timing_table,
    training_table,
)


def parse_pairs(items, flag):
    """``NAME=PATH`` words as a dict (in order); InputError naming `flag` for a malformed word."""
    out = {}
    for item in items or ():
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise InputError(f"{flag}: expected NAME=PATH, got {item!r}")
        out[name] = path
    return out


def _rel(path, out):
    return os.path.relpath(path, Path(out).parent)


def read_table(path):
    """Rows of a TSV (``.tsv``) or CSV file as dicts."""
    try:
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh, delimiter="\t" if str(path).endswith(".tsv") else ","))
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None


def read_benchmarks(folder):
    """Wall time and peak memory of every Snakemake benchmark file under `folder` (name -> (s, max_rss))."""
    out = {}
    for f in sorted(Path(folder).rglob("*.tsv")):
        rows = read_table(f)
        if rows:
            name = str(f.relative_to(folder).with_suffix(""))
            out[name] = (float(rows[0]["s"]), float(rows[0].get("max_rss") or "nan"))
    return out


def _read_sidecar(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the fit sidecar ({exc})") from None


def _warnings(summary):
    """The detection summary's ``WARNING:`` lines (what the camera survey found the data contradict), for the top."""
    if not summary:
        return []
    try:
        lines = [ln.strip() for ln in Path(summary).read_text().splitlines() if ln.strip().startswith("WARNING:")]
    except OSError:
        return []  # _detection names the unreadable file
    return ["\n".join(f"> **{ln}**" for ln in lines)] if lines else []


def _detection(summary, count_map_png, out, camera_png=None):
    parts = []
    if summary:
        try:
            text = Path(summary).read_text()
        except OSError as exc:
            raise InputError(f"{summary}: cannot read ({exc.strerror})") from None
        parts.append("## Detection\n\n```\n" + text.rstrip() + "\n```")
    if count_map_png:
        parts.append(f"![count map]({_rel(count_map_png, out)})")
    if camera_png:
        parts.append(f"![camera spot model]({_rel(camera_png, out)})")
    return parts


def _answers(answers, final, side, truth_path, calibration=None, nn=None):
    table = {}
    for name, path in answers.items():
        a = read_answer(path)
        table[name] = (a["R"], a["beta"])
    if not table:
        return []
    se = {}
    if calibration is not None and "fit" in table:  # the fit's answer is the calibrated one
        se["fit"] = (calibration["se_R"], calibration["se_beta"])
        if side is not None and "fit_uncorrected" in table:
            se["fit_uncorrected"] = (side["se_R"], side["se_beta"])
    elif side is not None and "fit" in table:
        se["fit"] = (side["se_R"], side["se_beta"])
    if nn is not None and "nn" in table:  # no standard errors of the network's R (from the map or the fit)
        se["nn"] = (np.full(len(nn["R"]), np.nan), nn["se"])
    truth = None
    if truth_path:
        t = read_truth(truth_path)
        truth = (t.R, t.beta)
    note = f" The final answer (`results/final.h5`) is **{final}**'s." if final else ""
    return ["## Answers side by side\n\nStandard errors where the method gives them." + note
            + "\n\n" + answers_table(table, truth=truth, se=se)]


def _calibration(cal):
    """The detector calibration: what detection did to the fit, and what was removed."""
    if cal is None:
        return []

    bias, bias_se, unc = cal["bias"], cal["bias_se"], cal["uncorrected"]
    beta_b, beta_e = np.atleast_2d(bias["beta"]), np.atleast_2d(bias_se["beta"])
    w = distance_weights(beta_b.shape[1])
    rows = []
    for j in range(len(cal["R"])):
        rows.append([j, f"{np.exp(bias['ln_weights'][j]):.4f}",
                     f"{unc['weights'][j]:.0f} -> {cal['weights'][j]:.0f} ± {cal['se_weights'][j]:.0f}",
                     f"{bias['R'][j]:+.2e} ± {bias_se['R'][j]:.1e}",
                     f"{beta_b[j][0]:+.4f} ± {beta_e[j][0]:.4f}",
                     f"{np.sqrt(np.sum(w * beta_b[j] ** 2)):.4f} ± {np.sqrt(np.sum(w * beta_e[j] ** 2)):.4f}",
                     f"{unc['expected_distance'][j]:.4f} -> {cal['expected_distance'][j]:.4f}"])
    info = cal["calibration"]
    return ["## Detector calibration\n\n"
            f"{_calibration_frames(cal)} simulated at the fitted parameters "
            f"({len(cal['passes'])} pass(es), {info['seconds']:.0f} s), detected like the data; the "
            "difference between the fits of the detected and the true electrons (the bias) was "
            "subtracted from the fit, and its error added to the standard errors. The corrected "
            "electrons of a shell are its fitted electrons over its detected / true ratio: an "
            "estimate of the electrons that reached the detector, pile-up and faint spots included.\n\n"
            + markdown_table(["shell", "detected / true electrons", "electrons (fit -> corrected)", "bias of R", "bias of beta_2",
                              "bias distance", "expected distance (uncorrected -> corrected)"], rows)]


def _calibration_frames(cal):
    """'N frames per pass', with the top-up frames that the camera's detection noise asked for."""
    text = f"{cal['calibration']['frames_per_pass']} frames per pass"
    extra = [p.get("top_up_frames", 0) for p in cal["passes"]]
    if any(extra):
        text += (" and " + " / ".join(str(e) for e in extra) + " more (a top-up: the bias's error would have raised "
                 f"the expected distance by more than {100 * cal['calibration']['settings']['max_added_error']:g} %)")
    return text


def _score(path):
    rows = read_table(path) if path else []
    if not rows:
        return []
    return ["## Score\n\nPer-shell distance d_j (the grader's), their sum, and R differences.\n\n"
            + markdown_table(list(rows[0]), [list(r.values()) for r in rows])]


def _fmt_peak(peak):
    """One shell-search candidate (a dict of the fit's ``shell_search``) as a table row."""
    sig = peak.get("significance", peak.get("z"))
    return [f"{float(peak.get('R', float('nan'))):.4f}", "-" if sig is None else f"{float(sig):.1f}",
            "yes" if peak.get("accepted", True) else "no"]


def _geometry(side):
    """The image centre, the flat background and the shell search of the fit (lab data)."""
    if side is None or "centre" not in side:
        return []
    x0, z0 = (float(v) for v in side["centre"])
    sx, sz = (float(v) for v in side.get("centre_se", (float("nan"),) * 2))
    lines = [(f"- image centre: x0 = {512 * x0:+.3f} ± {512 * sx:.3f} px, z0 = {512 * z0:+.3f} ± {512 * sz:.3f} px "
              f"from the screen centre ({x0:+.6f}, {z0:+.6f} screen units)")]
    if "background" in side:
        line = f"- flat background: {float(side['background']):.1f} ± {float(side.get('background_se', float('nan'))):.1f}" \
               " electrons over the screen"
        if side.get("background_per_frame") is not None:
            line += f" ({float(side['background_per_frame']):.4f} ± " \
                    f"{float(side.get('background_per_frame_se', float('nan'))):.4f} per frame)"
        lines.append(line)
    text = "## Image centre, background and shells\n\n" + "\n".join(lines)
    search = side.get("shell_search") or {}
    peaks = search.get("peaks") or []
    if peaks:
        how = search.get("test") or search.get("method") or ""
        text += (f"\n\n{len(side['R'])} shell(s) fitted" + (f"; {how}" if how else "") + ".\n\n"
                 + markdown_table(["radial peak R", "significance (sigma)", "a shell"], [_fmt_peak(p) for p in peaks]))
    return [text]


def _fit(side, fit_png, out):
    parts = []
    if side is not None:
        rows = [[j, f"{side['sigma_R'][j]:.5f} ± {side['se_sigma_R'][j]:.5f}", f"{side['weights'][j]:.0f}",
                 f"{side['expected_distance'][j]:.4f}", f"{side['floor'][j]:.4f}",
                 "yes" if side["constraint_active"][j] else "no"] for j in range(len(side["R"]))]
        disp = side.get("dispersion") or {}
        quasi = "" if not disp.get("quasi_likelihood") else (
            f" Intensity image: quasi-likelihood with dispersion phi = {disp['phi']:.4g} ± {disp['phi_se']:.2g} "
            "(counts per electron × (1 + cv²)); electrons are effective electrons (image / phi).")
        parts.append(f"## Fit ({side['method']})\n\n{side['n_iter']} iterations, "
                     + ("converged" if side["converged"] else "**not converged**") + "." + quasi + "\n\n"
                     + markdown_table(["shell", "sigma_R", "electrons", "expected distance", "floor (known angles)",
                                       "I >= 0 constraint active"], rows))
    if fit_png:
        parts.append(f"![fit]({_rel(fit_png, out)})")
    return parts


def _ensemble(nn, final, truth_path, side=None):
    """The network ensemble: every member, the ensemble alone, the combined answer and the fit's
    (its prior centre, when the sidecar is given), beta_2 and beta_4."""
    if nn is None:
        return []
    tb = read_truth(truth_path).beta if truth_path else None
    rows = []
    members = np.asarray(nn["members"])

    def pair(beta, se, j):
        return [f"{beta[j][k]:.4f}" + ("" if se is None else f" ± {se[j][k]:.4f}") for k in (0, 1)]

    for j in range(len(nn["R"])):
        for m in range(members.shape[0]):
            rows.append([j, f"member {m}", *pair(members[m], None, j)])
        rows.append([j, f"ensemble of {nn['M']} (network alone)", *pair(nn["beta_network"], nn["se_network"], j)])
        if nn.get("combined"):
            rows.append([j, "shrunk towards the fit (answer `nn`)", *pair(nn["beta"], nn["se"], j)])
        if side is not None and len(side["beta"]) == len(nn["R"]):
            order = np.argsort(side["R"])
            rows.append([j, "fit (`fit.json`, the prior centre)",
                         *pair(np.asarray(side["beta"])[order], np.asarray(side["se_beta"])[order], j)])
        if tb is not None:
            rows.append([j, "truth", f"{tb[j][0]:.4f}", f"{tb[j][1]:.4f}"])
    what = ("the answer `nn` is the ensemble shrunk towards the fit's answer it was fine-tuned around, by the "
            "weight its departures from that centre earn on the calibration maps (the network's weight: "
            + ", ".join(f"shell {j} beta_2 {w[0]:.2f}, beta_4 {w[1]:.2f}" for j, w in enumerate(nn["weight_network"]))
            + ")") if nn.get("combined") else "the answer `nn` is the ensemble's mean"
    note = f" `results/final.h5` is **{final}**'s answer." if final else ""
    return ["## Network ensemble\n\nEach member's prediction of the real map, the ensemble's mean with its "
            "standard error (its root mean square error on maps of the fine-tuning prior that no member trained "
            f"on, more where the members disagree more on the real map), and {what}.{note}\n\n"
            + markdown_table(["shell", "", "beta_2", "beta_4"], rows)]


def _training(runs, out):
    if not runs:
        return []
    table = training_table({name: read_table(Path(d) / "metrics.csv") for name, d in runs.items()})
    curves = "\n".join(f"![{name}]({_rel(Path(d) / 'loss.png', out)})" for name, d in runs.items()
                       if (Path(d) / "loss.png").exists())
    return ["## Network training\n\nDistances are the score (sum over both shells) on the synthetic "
            "validation maps.\n\n" + table + ("\n\n" + curves if curves else "")]


def _timing(folder):
    if not folder or not Path(folder).is_dir():
        return []
    return ["## Where the time went\n\nWall time of each job (Snakemake `benchmark:` files).\n\n"
            + timing_table(read_benchmarks(folder))]


def build_report(out, *, frames=None, detect_summary=None, count_map_png=None, answers=None, final=None,
                 fit_sidecar=None, fit_png=None, truth=None, score=None, runs=None, benchmarks=None, now=None,
                 calibration=None, camera_png=None, nn_sidecar=None):
    """The Markdown text of a run's report.

    Parameters
    ----------
    out : str or Path
        Where the report will be written (images are linked relative to it).
    frames : str, optional
        The test file the run analysed (named in the title line).
    detect_summary, count_map_png : str, optional
        ``summary.txt`` of ``sevi accumulate`` and the count-map picture.
    camera_png : str, optional
        The camera survey's spot-model picture (``sevi plot-camera``), after the count map.
    answers : dict, optional
        Method name -> Answer file.
    final : str, optional
        Name of the method whose answer is the final one.
    fit_sidecar, fit_png : str, optional
        JSON sidecar and PNG of ``sevi fit``.
    calibration : str, optional
        JSON sidecar of ``sevi calibrate``: adds the detector calibration section, and the
        standard errors of the answer named ``fit`` come from it (``fit_uncorrected``: the fit's).
    truth, score : str, optional
        Truth file (adds the truth and distances) and the score table (TSV).
    runs : dict, optional
        Training run name -> run folder (none: no training section).
    benchmarks : str, optional
        Folder of Snakemake benchmark files.
    now : datetime.datetime, optional
        Time stamp (default: now).
    nn_sidecar : str, optional
        ``nn.json`` of ``sevi nn ensemble``: standard errors of the answer named ``nn`` and the
        network ensemble section (every member, the ensemble alone, the combined answer).

    Returns
    -------
    str
    """
    now = now or datetime.datetime.now()
    side = _read_sidecar(fit_sidecar) if fit_sidecar else None
    cal = _read_sidecar(calibration) if calibration else None
    parts = [f"# sevi report\n\nWritten {now:%Y-%m-%d %H:%M}" + (f" for `{frames}`." if frames else ".")]
    parts += _warnings(detect_summary)
    parts += _detection(detect_summary, count_map_png, out, camera_png)
    nn = _read_sidecar(nn_sidecar) if nn_sidecar else None
    parts += _answers(answers or {}, final, side, truth, cal, nn)
    parts += _geometry(side)
    parts += _calibration(cal)
    parts += _score(score)
    parts += _fit(side, fit_png, out)
    parts += _ensemble(nn, final, truth, side)
    parts += _training(runs or {}, out)
    parts += _timing(benchmarks)
    return "\n\n".join(parts) + "\n"


def write_report(out, inputs=(), **sections):
    """Check `out` (:func:`sevi_lib.core.io.check_outputs`), build the report and write it atomically.

    Parameters
    ----------
    out : str or Path
    inputs : iterable of str
        Every file the report reads (the output must be none of them).
    **sections
        As in :func:`build_report`.
    """
    check_outputs([out], [p for p in inputs if p])
    write_text(out, build_report(out, **sections))
