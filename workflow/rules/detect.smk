# Electron detection (issue 3): config["detect"]["shards"] contiguous frame ranges of the test
# file, each detected by one job, then gathered by `accumulate`.
# Uses from common.smk: test_images().
#
# Shard i of K computes its own range [i n / K, (i + 1) n / K) inside the job from the frame
# count n of the file, so the DAG does not need to open the (possibly not yet simulated) test
# file, and fewer frames than shards simply gives empty, valid shards. Every detector value of
# the config goes through params, so editing one reruns the shards and what follows only.

# job layout defaults (the schema fills them too); detector defaults live in DetectorParams
DETECT = {"shards": 10, "threads": 1, "chunk": 64, **config.get("detect", {})}
DETECT_SHARDS = int(DETECT["shards"])
DETECT_SHARD_FILES = expand("results/detect/shards/shard_{i}.h5", i=range(DETECT_SHARDS))
# config keys that are not DetectorParams fields (job layout, not detector behaviour)
DETECT_LAYOUT_KEYS = ("shards", "threads", "chunk")


def detect_flags():
    """`sevi detect` flags for every detector parameter in the config's detect section."""
    return " ".join(
        f"--{key.replace('_', '-')} {value}"
        for key, value in sorted(DETECT.items())
        if key not in DETECT_LAYOUT_KEYS
    )


rule detect:
    input:
        frames=test_images(),
    output:
        "results/detect/shards/shard_{i}.h5",
    wildcard_constraints:
        i=r"\d+",
    params:
        shards=DETECT_SHARDS,
        chunk=DETECT["chunk"],
        detector=detect_flags(),
    threads: int(DETECT["threads"])
    log:
        "results/logs/detect/shard_{i}.log",
    benchmark:
        "results/benchmarks/detect/shard_{i}.tsv"
    shell:
        "NUMBA_NUM_THREADS={threads} sevi detect {input.frames} --shard {wildcards.i} --shards {params.shards}"
        " --threads {threads} --chunk {params.chunk} {params.detector} --out {output} > {log} 2>&1"


rule accumulate:
    input:
        DETECT_SHARD_FILES,
    output:
        electrons="results/detect/electrons.h5",
        count_map="results/detect/count_map.npy",
        intensity_sum="results/detect/intensity_sum.npy",
        png="results/detect/count_map.png",
        summary="results/detect/summary.txt",
    log:
        "results/logs/accumulate.log",
    benchmark:
        "results/benchmarks/accumulate.tsv"
    shell:
        "sevi accumulate {input} --electrons {output.electrons} --count-map {output.count_map}"
        " --intensity-sum {output.intensity_sum} --png {output.png} --summary {output.summary} > {log} 2>&1"
