# The embedded default (issue 2): synthesise a test file and its truth from config["simulation"]
# with `sevi simulate` (numba simulator + the published spot model, streamed to disk in chunks).
# Only used when config["test_images"] is empty. Every simulation value goes through params, so
# editing one reruns the synthesis and what depends on it.

SIM = config["simulation"]


def simulation_flags():
    """`sevi simulate` flags for every value of the simulation section."""
    shells = SIM["shells"]
    beta = " ".join(",".join(repr(float(b)) for b in s["beta"]) for s in shells)
    return (
        f"--seed {SIM['seed']} --n-frames {SIM['n_frames']}"
        f" --electrons-per-shell {' '.join(str(float(n)) for n in SIM['electrons_per_shell'])}"
        f" --detection-loss {SIM['detection_loss']}"
        f" --R {' '.join(repr(float(s['R'])) for s in shells)}"
        f" --sigma-R {' '.join(repr(float(s['sigma_R'])) for s in shells)}"
        f" --beta {beta}"
    )


rule simulate:
    output:
        frames=SIM_FRAMES,
        truth=SIM_TRUTH,
    params:
        simulation=simulation_flags(),
        chunk=SIM["chunk"],
    threads: SIM["threads"]
    log:
        "results/logs/simulate.log",
    benchmark:
        "results/benchmarks/simulate.tsv"
    shell:
        "NUMBA_NUM_THREADS={threads} sevi simulate --frames {output.frames} --truth {output.truth}"
        " {params.simulation} --chunk {params.chunk} --threads {threads} > {log} 2>&1"
