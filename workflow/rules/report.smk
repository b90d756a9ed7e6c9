# What happened, on one page: results/report.md (detection, the answers side by side with their
# standard errors and the truth when known, the detector calibration, the score, fit diagnostics,
# training curves, and the wall time of every job). `snakemake --report results/report.html`
# gathers the same results (every output marked with report() below and in the other rule
# files, captions in workflow/report/) into one self-contained page. `count_map_png` draws the
# detected count map with the image centre and the shell radii the fit found (`sevi plot-map`);
# `camera_png` the spot model the camera survey measured (`sevi plot-camera`).
# Uses from common.smk: ANSWERS, SCORED, CALIBRATED, truth_file(), test_images(); from nn.smk: NN.


rule count_map_png:
    input:
        count_map="results/detect/count_map.npy",
        sidecar="results/answer/fit.json",
    output:
        report("results/detect/count_map.png", caption="../report/count_map.rst", category="1. Detection"),
    log:
        "results/logs/count_map_png.log",
    shell:
        "sevi plot-map {input.count_map:q} --fit-sidecar {input.sidecar:q} --out {output:q} > {log:q} 2>&1"


rule camera_png:
    input:
        "results/detect/camera.json",
    output:
        report("results/detect/camera.png", caption="../report/camera.rst", category="1. Detection"),
    log:
        "results/logs/camera_png.log",
    shell:
        "sevi plot-camera {input:q} --out {output:q} > {log:q} 2>&1"


rule report:
    input:
        unpack(_report_input),
    output:
        report("results/report.md", caption="../report/report_md.rst", category="5. Run"),
    params:
        frames=test_images(),
        final=config["answer"]["method"],
        answers=[f"{m}={p}" for m, p in SCORED.items()],
        runs=[f"{name}={d}" for name, d in _report_runs().items()],
        fit_sidecar=_flag("fit-sidecar", "sidecar"),
        fit_png=_flag("fit-png", "fit_png"),
        calibration=_flag("calibration", "calibration"),
        nn_sidecar=_flag("nn-sidecar", "nn_sidecar"),
        truth=_flag("truth", "truth"),
        score=_flag("score", "score"),
    log:
        "results/logs/report.log",
    shell:
        "sevi report --out {output:q} --frames {params.frames:q} --final {params.final:q}"
        " --detect-summary {input.summary:q} --count-map-png {input.count_map_png:q}"
        " --camera-png {input.camera_png:q} --answer {params.answers:q}"
        " {params.fit_sidecar} {params.fit_png} {params.calibration} {params.nn_sidecar} {params.truth} {params.score}"
        " --run {params.runs:q} --benchmarks results/benchmarks > {log:q} 2>&1"
