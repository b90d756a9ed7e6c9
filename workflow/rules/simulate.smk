# The embedded default: synthesise a test file and its truth from config["simulation"] with
# `sevi simulate` (library sevi_lib.simulate: numba sampler + renderer of the camera's spot model,
# streamed to disk in chunks). Only used when config["test_images"] is empty. Every value of the
# section that changes the frames goes through params, so editing one reruns the synthesis and
# what depends on it: the scalars as flags, `spot:` (the spot model, default the published one)
# as one `--spot` JSON mapping; `chunk` and `threads` only change how the work is done (the file
# is byte-identical), so they are the job's resource and threads, not params.

SIM = config["simulation"]
SIM_LAYOUT_KEYS = ("shells", "chunk", "threads")


rule simulate:
    output:
        frames=SIM_FRAMES,
        truth=SIM_TRUTH,
    params:
        simulation=simulation_flags(),
    threads: int(SIM.get("threads", 2))
    resources:
        simulate_chunk=int(SIM.get("chunk", 64)),
    log:
        "results/logs/simulate.log",
    benchmark:
        "results/benchmarks/simulate.tsv"
    shell:
        "NUMBA_NUM_THREADS={threads} sevi simulate --frames {output.frames:q} --truth {output.truth:q}"
        " {params.simulation} --chunk {resources.simulate_chunk} --threads {threads} > {log:q} 2>&1"
