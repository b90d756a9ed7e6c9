"""A one-page Markdown report of a workflow run: what was detected, what each method answered,
how far each answer is from the truth (when known), how training went and where the time went.

The builders are pure functions of already-read data, so they are easy to test; reading the
files is left to :mod:`sevi_lib.report.markdown`.
"""

import numpy as np

from sevi_lib.core.score import shell_distance


def markdown_table(header, rows):
    """A GitHub-flavoured Markdown table.

    Parameters
    ----------
    header : sequence of str
    rows : sequence of sequence
        Cells are converted with ``str``; floats should be formatted by the caller.

    Returns
    -------
    str
    """
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def answers_table(answers, truth=None, se=None):
    """Side-by-side table of every method's R and beta's per shell.

    Parameters
    ----------
    answers : dict
        Method name -> ``(R, beta)`` with R of shape (S,) and beta of shape (S, N_method).
    truth : tuple, optional
        ``(R, beta)`` of the truth; adds a truth column and a per-shell distance row.
    se : dict, optional
        Method name -> ``(se_R, se_beta)``: standard errors printed as ``value +- se``.

    Returns
    -------
    str
        Markdown: one table per shell, rows R, beta_2, beta_4, ... (the longest answer), and
        the distance to the truth if given.
    """
    se = se or {}
    names = list(answers)
    n_shells = max(np.asarray(a[0]).size for a in answers.values())
    n = max(np.asarray(a[1]).shape[-1] for a in answers.values())
    if truth is not None:
        n = max(n, np.asarray(truth[1]).shape[-1])

    def cell(name, j, row):
        R, beta = (np.asarray(v, dtype=np.float64) for v in answers[name])
        e = se.get(name)
        if j >= R.size:
            return ""
        if row == 0:
            value, err = R[j], (None if e is None else np.asarray(e[0])[j])
            fmt = "{:.5f}"
        else:
            k = row - 1
            value = beta[j, k] if k < beta.shape[1] else None
            err = None if (e is None or value is None) else np.asarray(e[1])[j, k]
            fmt = "{:.4f}"
        if value is None:
            return "-"
        return fmt.format(value) + ("" if err is None or not np.isfinite(err) else " ± " + fmt.format(err))

    blocks = []
    for j in range(n_shells):
        header = ["", *names] + (["truth"] if truth is not None else [])
        rows = []
        for row in range(n + 1):
            label = "R" if row == 0 else f"beta_{2 * row}"
            r = [label, *(cell(name, j, row) for name in names)]
            if truth is not None:
                tR, tb = (np.asarray(v, dtype=np.float64) for v in truth)
                if row == 0:
                    r.append(f"{tR[j]:.5f}")
                else:
                    r.append(f"{tb[j, row - 1]:.4f}" if row - 1 < tb.shape[1] else "0")
            rows.append(r)
        if truth is not None:
            tb = np.asarray(truth[1], dtype=np.float64)[j]
            rows.append(["distance to truth",
                         *(f"{float(shell_distance(np.asarray(answers[m][1])[j], tb)):.4f}" for m in names), ""])
        blocks.append(f"Shell {j} (smaller radius first)\n\n" + markdown_table(header, rows))
    return "\n\n".join(blocks)


def training_table(runs):
    """One row per training run: epochs, best validation distance, time, samples/s.

    Parameters
    ----------
    runs : dict
        Run name -> list of per-epoch dicts (rows of the run's ``metrics.csv``).

    Returns
    -------
    str
    """
    rows = []
    for name, epochs in runs.items():
        if not epochs:
            rows.append([name, 0, "-", "-", "-", "-"])
            continue
        val = np.array([float(e["val_mean"]) for e in epochs])
        best = int(np.argmin(val))
        seconds = sum(float(e["t_epoch"]) for e in epochs)
        rate = np.mean([float(e["samples_per_s"]) for e in epochs])
        rows.append([name, len(epochs), f"{val[best]:.4f} (epoch {epochs[best]['epoch']})",
                     f"{float(epochs[-1]['train_mean']):.4f}", f"{seconds:.0f}", f"{rate:.1f}"])
    return markdown_table(["run", "epochs", "best validation distance", "last training distance",
                           "seconds", "samples/s"], rows)


def timing_table(benchmarks):
    """Wall time and peak memory of each job, slowest first, with the total.

    Parameters
    ----------
    benchmarks : dict
        Job name -> ``(seconds, max_rss_MB)`` from Snakemake's ``benchmark:`` files.

    Returns
    -------
    str
    """
    items = sorted(benchmarks.items(), key=lambda kv: -kv[1][0])
    rows = [[name, f"{s:.1f}", f"{m:.0f}"] for name, (s, m) in items]
    rows.append(["**total (serial)**", f"{sum(s for s, _ in benchmarks.values()):.1f}", ""])
    return markdown_table(["job", "seconds", "peak RSS (MB)"], rows)
