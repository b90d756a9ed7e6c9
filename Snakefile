# sevi: camera frames of a SEVI experiment -> photoelectron angular distributions.
#
#   snakemake --cores all                              embedded default (synthesised frames, known truth)
#   snakemake --cores all --config test_images=finaltest.h5 [truth=truth.h5]
#   snakemake --cores 16 --resources gpu=4 --configfile config/full.yaml
#
# Stages (workflow/rules/<stage>.smk, library sevi_lib/<stage>/, tests tests/<stage>/):
# simulate -> detect -> fit (+ calibrate) | nn -> final answer + score + report.
import os
import sys

from snakemake.utils import min_version, validate

min_version("9.0")

# The default configuration lives beside this Snakefile, so `snakemake -s /path/to/sevi/Snakefile`
# works from any folder (results/ is written to the folder snakemake runs in).
DEFAULT_CONFIG = os.path.join(workflow.basedir, "config", "config.yaml")
if not os.path.exists(DEFAULT_CONFIG):
    print(f"sevi: error: {DEFAULT_CONFIG}: default config file not found", file=sys.stderr)
    sys.exit(2)


configfile: DEFAULT_CONFIG


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/detect.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/calibrate.smk"
include: "workflow/rules/nn.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        final_targets(),
