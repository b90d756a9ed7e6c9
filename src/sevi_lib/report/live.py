"""The live view of ``sevi watch``: a page that reloads itself, and its figures.

The page (:func:`live_page`) is one HTML file with a ``<meta http-equiv="refresh">`` and three
PNG figures beside it (matplotlib, drawn by :mod:`sevi_lib.report.plots` and
:func:`history_figure`), so it needs no server and no script: open ``STATE/live/index.html`` in
a browser and leave it open. The status lines are on the page as text; a reached target is a
banner at the top.
"""

import html

import numpy as np

from sevi_lib.report.plots import plt


def history_figure(history, title=None):
    """beta_2 and beta_4 of every shell, with their standard errors, against the frames counted.

    Parameters
    ----------
    history : list of dict
        Refit records (``frames``, ``beta``, ``se_beta``; :meth:`sevi_lib.watch.state.WatchState.history`).
        Records with another number of shells than the last one are left out.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    rows = [h for h in history if h.get("beta")]
    if rows:
        n_shells = len(rows[-1]["beta"])
        rows = [h for h in rows if len(h["beta"]) == n_shells]
        frames = np.array([h["frames"] for h in rows], dtype=float)
        beta = np.array([h["beta"] for h in rows], dtype=float)
        se = np.array([h["se_beta"] for h in rows], dtype=float)
        for k, ax in enumerate(axes):
            if beta.shape[2] <= k:
                continue
            for j in range(n_shells):
                ax.errorbar(frames, beta[:, j, k], yerr=se[:, j, k], marker="o", ms=3, capsize=2,
                            label=f"shell {j} (R {rows[-1]['R'][j]:.3f})")
            ax.set_xscale("log" if frames.min() > 0 and frames.max() > 4 * frames.min() else "linear")
            ax.set_xlabel("frames counted")
            ax.set_ylabel(f"beta_{2 * (k + 1)}")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=8)
    else:
        for ax in axes:
            ax.text(0.5, 0.5, "no fit yet", ha="center", va="center", transform=ax.transAxes)
    if title:
        fig.suptitle(title)
    return fig


def live_page(lines, images, *, refresh_s=10, title="sevi watch", stamp="", finished=False, reached=False):
    """The HTML text of the live page.

    Parameters
    ----------
    lines : list of str
        Status lines (:func:`sevi_lib.watch.live.status_lines`).
    images : list of (str, str)
        ``(file name beside the page, caption)`` of each figure.
    refresh_s : float
        Seconds between reloads (none once `finished`).
    title : str
    stamp : str
        Appended to the image addresses (``?stamp``) so that the browser fetches the new figures.
    finished : bool
        The run has ended: no more reloads, and the page says so.
    reached : bool
        A target precision has been reached (a banner).

    Returns
    -------
    str
    """
    meta = "" if finished else f'<meta http-equiv="refresh" content="{max(1, int(round(refresh_s)))}">'
    banner = ""
    if reached:
        banner = '<p id="reached" style="background:#1a7f37;color:white;padding:8px;font-size:20px">target precision reached</p>'
    state = "run finished: the final answer" if finished else f"live, reloads every {refresh_s:g} s"
    figs = "\n".join(f'<figure><img src="{html.escape(name)}?{html.escape(stamp)}" alt="{html.escape(cap)}" '
                     f'style="max-width:100%"><figcaption>{html.escape(cap)}</figcaption></figure>'
                     for name, cap in images)
    text = html.escape("\n".join(lines))
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8">{meta}<title>{html.escape(title)}</title></head>\n'
            f'<body style="font-family:sans-serif;margin:16px">\n<h1>{html.escape(title)}</h1>\n{banner}\n'
            f'<p id="state">{state}</p>\n<pre id="status">{text}</pre>\n{figs}\n</body></html>\n')
