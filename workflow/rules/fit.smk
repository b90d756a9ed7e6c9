# Fit of the projected two-shell model (issue 4), the final answer and its score.
# Uses from common.smk: ANSWERS (method name -> Answer file), truth_file().

FIT_INPUTS = {
    "unbinned": "results/detect/electrons.h5",
    "binned": "results/detect/count_map.npy",
    "sum": "results/detect/intensity_sum.npy",
}


rule fit:
    input:
        data=FIT_INPUTS[config["fit"]["method"]],
    output:
        answer="results/answer/fit.h5",
        sidecar="results/answer/fit.json",
        plot="results/answer/fit.png",
    params:
        method=config["fit"]["method"],
        n_beta=config["fit"]["n_beta"],
        kernel_spots=config["fit"]["kernel_spots"],
        max_iter=config["fit"]["max_iter"],
    log:
        "results/logs/fit.log",
    benchmark:
        "results/benchmarks/fit.tsv"
    threads: 1
    shell:
        "NUMBA_NUM_THREADS={threads} sevi fit {input.data} --method {params.method} --n-beta {params.n_beta}"
        " --kernel-spots {params.kernel_spots} --max-iter {params.max_iter}"
        " --out {output.answer} --sidecar {output.sidecar} --plot {output.plot} > {log} 2>&1"


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
        " && cp {input} {output}.tmp && mv {output}.tmp {output}) > {log} 2>&1"


rule score:
    input:
        answers=list(ANSWERS.values()),
        truth=truth_file() or [],
    output:
        "results/score.tsv",
    params:
        methods=list(ANSWERS.keys()),
    log:
        "results/logs/score.log",
    run:
        import json
        import subprocess

        from sevi_lib.core.io import write_text

        rows = ["method\td_0\td_1\tsum\tdR_0\tdR_1"]
        with open(log[0], "w") as lf:
            for method, answer in zip(params.methods, input.answers):
                out = subprocess.run(
                    ["sevi", "score", answer, input.truth, "--json"], check=True, capture_output=True, text=True
                ).stdout
                lf.write(f"{method}: {out}\n")
                res = json.loads(out)
                d, dr = res["distance"], res["dR"]
                rows.append(f"{method}\t" + "\t".join(f"{v:.6f}" for v in [*d, res["total"], *dr]))
        write_text(output[0], "\n".join(rows) + "\n")
