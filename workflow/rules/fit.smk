# Fit of the projected shell model (library sevi_lib.fit, `sevi fit`), the final answer and its
# score. Uses from common.smk: ANSWERS (method name -> Answer file), SCORED, truth_file(),
# settings_flags().
#
# What reruns the fit (params): every value of the `fit:` section (FitSettings fields, one
# `--field-name value` flag each; defaults live in sevi_lib.fit.FitSettings). `fit.method` also
# chooses the input: the electron table, the count map or the raw-frame sum. `fit.threads` is the
# job's threads (numba's; BLAS stays on one, whose threads would only compete): the answer is the
# same bit for bit for any number, so it is not a param.

FIT = config["fit"]
FIT_INPUTS = {
    "unbinned": "results/detect/electrons.h5",
    "binned": "results/detect/count_map.npy",
    "sum": "results/detect/intensity_sum.npy",
}


rule fit:
    input:
        data=FIT_INPUTS[FIT["method"]],
    output:
        answer="results/answer/fit.h5",
        sidecar="results/answer/fit.json",
        plot=report("results/answer/fit.png", caption="../report/fit.rst", category="2. Fit"),
    params:
        settings=settings_flags(FIT, skip=("threads",)),
    log:
        "results/logs/fit.log",
    benchmark:
        "results/benchmarks/fit.tsv"
    threads: int(FIT["threads"])
    shell:
        "NUMBA_NUM_THREADS={threads} OPENBLAS_NUM_THREADS=1 sevi fit {input.data:q} {params.settings}"
        " --out {output.answer:q} --sidecar {output.sidecar:q} --plot {output.plot:q} > {log:q} 2>&1"


rule final:
    input:
        ANSWERS[config["answer"]["method"]],
    output:
        "results/final.h5",
    params:
        method=config["answer"]["method"],
    log:
        "results/logs/final.log",
    shell:
        "(echo 'final answer: {params.method} ({input})'"
        " && cp {input:q} {output:q}.tmp && mv {output:q}.tmp {output:q}) > {log:q} 2>&1"


rule score:
    input:
        answers=list(SCORED.values()),
        truth=truth_file() or [],
    output:
        report("results/score.tsv", caption="../report/score.rst", category="4. Answer"),
    params:
        names=list(SCORED.keys()),
    log:
        "results/logs/score.log",
    shell:
        "sevi score {input.answers:q} {input.truth:q} --names {params.names:q} --tsv {output:q} > {log:q} 2>&1"


# The photoelectron spectrum beside the fitted shells (`sevi spectrum`, sevi_lib.fit.spectrum):
# rBasex inversion of the detected electrons about the fitted centre; reruns with the fit.
rule spectrum:
    input:
        electrons="results/detect/electrons.h5",
        sidecar="results/answer/fit.json",
    output:
        tsv="results/answer/spectrum.tsv",
        plot=report("results/answer/spectrum.png", caption="../report/spectrum.rst", category="2. Fit"),
    params:
        order=4,
        bootstrap=40,
    log:
        "results/logs/spectrum.log",
    threads: 1
    shell:
        "sevi spectrum {input.electrons:q} --fit-sidecar {input.sidecar:q} --order {params.order}"
        " --bootstrap {params.bootstrap} --tsv {output.tsv:q} --plot {output.plot:q} > {log:q} 2>&1"
