# Detector calibration (issue 10): the fit of detected electrons corrected for what detection does.
# `sevi calibrate` (library sevi_lib.calibrate.calibrate_files) simulates frames at the fitted
# parameters (the fit's electrons per shell / the data's frames per frame), renders and detects
# them with the same detector settings as `detect`, fits the detected electrons and the true
# positions, and subtracts the difference from the fit; the bias's error (spread over blocks of
# calibration frames) is added to the standard errors in quadrature. The calibration frames share
# the data's camera: the fitted image centre, the fitted flat background as stray electrons, and
# the camera survey's read noise and hot pixels (detected with the survey, as the data was).
# Uses from common.smk: settings_flags(); from detect.smk (include it first): DETECT,
# DETECT_SKIP_KEYS (the job layout and the survey's spot_model, which reaches calibration through
# camera.json).
#
# What reruns calibration (params): every value of the `calibrate:` section (CalibrationSettings
# fields, one `--field-name value` flag each; their defaults live in CalibrationSettings) and
# every detector value of `detect:`. `threads` is the job's threads (the result does not depend
# on it), not a param.

# job layout (enabled, threads: schema defaults); calibration values: defaults in CalibrationSettings
CALIBRATE = config["calibrate"]
CALIBRATE_LAYOUT_KEYS = ("enabled", "threads")


rule calibrate:
    input:
        answer="results/answer/fit.h5",
        sidecar="results/answer/fit.json",
        electrons="results/detect/electrons.h5",
        camera="results/detect/camera.json",
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
        " --electrons {input.electrons:q} --camera {input.camera:q} --threads {threads} {params.settings} {params.detector}"
        " --out {output.answer:q} --out-sidecar {output.sidecar:q} > {log:q} 2>&1"
