# sevi: camera frames of a SEVI experiment -> photoelectron angular distributions.
#
#   snakemake --cores all                              embedded default (synthesised frames, known truth)
#   snakemake --cores all --config test_images=finaltest.h5 [truth=truth.h5]
#   snakemake --cores 16 --resources gpu=4 --configfile config/full.yaml
#
# Stages (workflow/rules/): simulate -> detect -> fit | nn -> final answer + score + report.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/detect.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/nn.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        final_targets(),
