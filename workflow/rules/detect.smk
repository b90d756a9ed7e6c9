# The camera survey (`sevi survey`, sevi_lib.detect.camera): read noise, pedestal and hot pixels
# estimated once from a sample of frames spread over the file (results/detect/camera.json), with
# the spot model measured from the isolated spots and the one in use (detect.spot_model); every
# shard detects with it (noise-implied thresholds, hot pixels masked, the spot model). Published
# frames: noise 0, no hot pixels, and detection is exactly the published detector. report.smk
# draws the spot model (results/detect/camera.png).
#
# Electron detection: config["detect"]["shards"] contiguous frame ranges of the test file, each
# detected by one job (`sevi detect`, library sevi_lib.detect.shards.detect_shard), then
# gathered by `accumulate` (sevi_lib.detect.shards.accumulate_files), which refuses shards of
# another frames file, overlaps and gaps.
# Uses from common.smk: test_images(), frames_identity(), settings_flags().
#
# Shard i of K computes its own range [i n / K, (i + 1) n / K) inside the job from the frame
# count n of the file, so the DAG does not need to open the (possibly not yet simulated) test
# file, and fewer frames than shards simply gives empty, valid shards.
#
# What reruns the survey (params): detect.spot_model (`sevi survey --spot-model`: measured,
# published or a mapping of spot-model fields, passed as compact JSON), detect.spot_fraction (the
# frames whose isolated spots measure the model) and the frames' identity.
#
# What reruns detection (params): every detector value of the config (DetectorParams fields,
# one `--field-name value` flag each), the number of shards, and the identity of a user's frames
# file (another file at the same path, or new contents). What does not: `threads` and `chunk`
# change how the work is done, not its result (bit-identical shards), so they are not params.
# `threads` is the rule's threads; `chunk` (frames read at a time: about that many MiB of memory)
# is a resource of the job, like its threads: resources are no rerun trigger, and the shell
# command's unformatted text (Snakemake's code trigger) does not contain the value. (Not a global
# read in the shell: `snakemake --lint` flags that; not params: editing it would rerun detection.)

# job layout defaults: the schema's; detector defaults live in DetectorParams
DETECT = config["detect"]
DETECT_SHARDS = int(DETECT["shards"])
DETECT_CHUNK = int(DETECT["chunk"])
DETECT_SHARD_FILES = expand("results/detect/shards/shard_{i}.h5", i=range(DETECT_SHARDS))
# config keys that are not DetectorParams fields (job layout, not detector behaviour)
DETECT_LAYOUT_KEYS = ("shards", "threads", "chunk")
# config keys of the survey (SurveySettings fields), not of `sevi detect`: the spot model reaches
# detection through camera.json, so editing it reruns the survey and, through its output,
# everything after it
DETECT_SURVEY_KEYS = ("spot_model", "spot_fraction")
# keys of `detect:` that are not detector flags (`sevi detect` and `sevi calibrate` skip them)
DETECT_SKIP_KEYS = DETECT_LAYOUT_KEYS + DETECT_SURVEY_KEYS


rule survey:
    input:
        frames=test_images(),
    output:
        "results/detect/camera.json",
    params:
        frames_identity=frames_identity(),
        survey=settings_flags({key: DETECT.get(key) for key in DETECT_SURVEY_KEYS}),
    log:
        "results/logs/survey.log",
    benchmark:
        "results/benchmarks/survey.tsv"
    threads: survey_threads()
    shell:
        "sevi survey {input.frames:q} --out {output:q} --threads {threads} {params.survey} > {log:q} 2>&1"


rule detect:
    input:
        frames=test_images(),
        camera="results/detect/camera.json",
    output:
        "results/detect/shards/shard_{i}.h5",
    wildcard_constraints:
        i=r"\d+",
    params:
        shards=DETECT_SHARDS,
        detector=settings_flags(DETECT, skip=DETECT_SKIP_KEYS),
        frames_identity=frames_identity(),
    threads: detect_threads()
    resources:
        detect_chunk=DETECT_CHUNK,
    log:
        "results/logs/detect/shard_{i}.log",
    benchmark:
        "results/benchmarks/detect/shard_{i}.tsv"
    shell:
        "NUMBA_NUM_THREADS={threads} sevi detect {input.frames:q} --shard {wildcards.i} --shards {params.shards}"
        " --camera {input.camera:q} --threads {threads} --chunk {resources.detect_chunk} {params.detector}"
        " --out {output:q} > {log:q} 2>&1"


rule accumulate:
    input:
        DETECT_SHARD_FILES,
    output:
        electrons="results/detect/electrons.h5",
        count_map="results/detect/count_map.npy",
        intensity_sum="results/detect/intensity_sum.npy",
        summary=report("results/detect/summary.txt", caption="../report/detect_summary.rst", category="1. Detection"),
    log:
        "results/logs/accumulate.log",
    benchmark:
        "results/benchmarks/accumulate.tsv"
    shell:
        "sevi accumulate {input:q} --electrons {output.electrons:q} --count-map {output.count_map:q}"
        " --intensity-sum {output.intensity_sum:q} --summary {output.summary:q} > {log:q} 2>&1"
