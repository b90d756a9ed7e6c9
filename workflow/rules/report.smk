# What happened, on one page: results/report.md (detection, the answers side by side with their
# standard errors and the truth when known, the score, fit diagnostics, training curves, and the
# wall time of every job).
# Uses from common.smk: ANSWERS, truth_file(), test_images(); from nn.smk: nn runs.


def _report_runs():
    """Training run folders (name -> folder) of the network method, if it runs."""
    if "nn" not in ANSWERS:
        return {}
    runs = {"pretrain": "results/nn/pretrain/run"}
    runs.update({f"finetune round {r}": f"results/nn/finetune/round{r}" for r in range(int(NN["finetune"]["rounds"]))})
    return runs


def _report_input(wildcards):
    out = {
        "answers": list(ANSWERS.values()),
        "summary": "results/detect/summary.txt",
        "count_map_png": "results/detect/count_map.png",
        "final": "results/final.h5",
        "metrics": [f"{d}/metrics.csv" for d in _report_runs().values()],
    }
    if "fit" in ANSWERS:
        out.update(sidecar="results/answer/fit.json", fit_png="results/answer/fit.png")
    if truth_file():
        out.update(truth=truth_file(), score="results/score.tsv")
    return out


rule report:
    input:
        unpack(_report_input),
    output:
        "results/report.md",
    params:
        frames=test_images(),
        final=config["answer"]["method"],
        answers=" ".join(f"{m}={p}" for m, p in ANSWERS.items()),
        runs=" ".join(shlex.quote(f"{name}={d}") for name, d in _report_runs().items()),
        fit=lambda w, input: (f"--fit-sidecar {input.sidecar} --fit-png {input.fit_png}"
                              if "sidecar" in input.keys() else ""),
        truth=lambda w, input: f"--truth {input.truth} --score {input.score}" if "truth" in input.keys() else "",
    log:
        "results/logs/report.log",
    shell:
        "sevi report --out {output} --frames {params.frames} --final {params.final}"
        " --detect-summary {input.summary} --count-map-png {input.count_map_png} --answer {params.answers}"
        " {params.fit} {params.truth} --run {params.runs} --benchmarks results/benchmarks > {log} 2>&1"
