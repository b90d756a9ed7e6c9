# Detector calibration (issue 10): the fit of detected electrons corrected for what detection does.
# Frames are simulated at the fitted parameters (the fit's electrons per shell / the data's frames
# per frame), rendered and detected with the same detector settings as `detect`; the detected
# electrons and the true positions are fitted, and the difference is subtracted from the fit; the
# bias's error (spread over blocks of calibration frames) is added to the standard errors in
# quadrature. The calibration frames share the data's camera: the fitted image centre, the fitted
# flat background as stray electrons, and the camera survey's read noise and hot pixels (detected
# with the survey, as the data was).
#
# Sharded like detection (issue 20): `calibrate_shard` jobs (`sevi calibrate-shard`, library
# sevi_lib.calibrate.files.calibrate_shard_files) each simulate and detect one contiguous frame
# range of the calibration frames and keep their detected electrons and true positions; one
# `calibrate` job (`sevi calibrate --shard-files`, sevi_lib.calibrate.calibrate_files) checks
# that the shards are one complete set made of its own inputs, fits them and writes the answer.
# Every calibration frame depends only on (seed, its index), so the answer is the same bit for bit
# for any number of shards. Extra passes (`iterations` > 0) depend on pass 0's result and run in
# the `calibrate` job itself, as do the second pass that a large bias asks for
# (CalibrationSettings.second_pass_above) and the last pass's top-up (the frames the bias's error
# asks for beyond frames_fraction, max_added_error). calibrate.shards: 0 (the default) is as
# many as detect.shards.
# Uses from common.smk: settings_flags(); from detect.smk (include it first): DETECT,
# DETECT_SKIP_KEYS (the job layout and the survey's spot_model, which reaches calibration through
# camera.json).
#
# What reruns calibration (params): every value of the `calibrate:` section (CalibrationSettings
# fields, one `--field-name value` flag each; their defaults live in CalibrationSettings) but the
# combining job's for the shards, every detector value of `detect:`, and (of the shards) their number. `threads` is the jobs' threads
# (the result does not depend on it), not a param.

# job layout (enabled, threads, shards: schema defaults); calibration values: defaults in CalibrationSettings
CALIBRATE = config["calibrate"]
CALIBRATE_LAYOUT_KEYS = ("enabled", "threads", "shards")
# the top-up (more frames where the bias's error is large) and the second pass (where the bias is
# large) run in the combining job only
CALIBRATE_COMBINE_KEYS = ("max_added_error", "max_frames_fraction", "second_pass_above")
CALIBRATE_SHARDS = int(CALIBRATE["shards"]) or DETECT_SHARDS
CALIBRATE_SHARD_FILES = expand("results/calibrate/shards/shard_{i}.h5", i=range(CALIBRATE_SHARDS))


rule calibrate_shard:
    input:
        answer="results/answer/fit.h5",
        sidecar="results/answer/fit.json",
        electrons="results/detect/electrons.h5",
        camera="results/detect/camera.json",
    output:
        "results/calibrate/shards/shard_{i}.h5",
    wildcard_constraints:
        i=r"\d+",
    params:
        shards=CALIBRATE_SHARDS,
        settings=settings_flags(CALIBRATE, skip=CALIBRATE_LAYOUT_KEYS + CALIBRATE_COMBINE_KEYS),
        detector=settings_flags(DETECT, skip=DETECT_SKIP_KEYS),
    threads: int(CALIBRATE["threads"])
    log:
        "results/logs/calibrate/shard_{i}.log",
    benchmark:
        "results/benchmarks/calibrate/shard_{i}.tsv"
    shell:
        "NUMBA_NUM_THREADS={threads} sevi calibrate-shard {input.answer:q} {input.sidecar:q}"
        " --electrons {input.electrons:q} --camera {input.camera:q} --shard {wildcards.i} --shards {params.shards}"
        " --threads {threads} {params.settings} {params.detector} --out {output:q} > {log:q} 2>&1"


rule calibrate:
    input:
        answer="results/answer/fit.h5",
        sidecar="results/answer/fit.json",
        electrons="results/detect/electrons.h5",
        camera="results/detect/camera.json",
        shards=CALIBRATE_SHARD_FILES,
    output:
        answer="results/answer/fit_calibrated.h5",
        sidecar="results/answer/fit_calibrated.json",
    params:
        settings=settings_flags(CALIBRATE, skip=CALIBRATE_LAYOUT_KEYS),
        detector=settings_flags(DETECT, skip=DETECT_SKIP_KEYS),
    threads: int(CALIBRATE["threads"])
    log:
        "results/logs/calibrate.log",
    benchmark:
        "results/benchmarks/calibrate.tsv"
    shell:
        "NUMBA_NUM_THREADS={threads} sevi calibrate {input.answer:q} {input.sidecar:q}"
        " --electrons {input.electrons:q} --camera {input.camera:q} --shard-files {input.shards:q}"
        " --threads {threads} {params.settings} {params.detector}"
        " --out {output.answer:q} --out-sidecar {output.sidecar:q} > {log:q} 2>&1"
