# vaebench: which output distribution should an image VAE's decoder use?
# One study = the config's losses x latent_dims x seeds on one dataset.
#   snakemake --cores all                                # full reproduction (config/config.yaml)
#   snakemake --cores all --configfile config/quick.yaml # quick preset, offline, minutes on a CPU
# Stages: data -> (select) -> train -> evaluate -> aggregate -> figures -> report (one rule file each).

from snakemake.utils import min_version

min_version("9.0")


# a preset stands alone: --configfile X replaces config/config.yaml instead of merging onto it; the default
# is found beside this file, so a study run in a directory of its own (--directory) finds it too
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config", "config.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


wildcard_constraints:
    **layout.WILDCARDS,  # datasets and families by name, numbers as digits


include: "workflow/rules/data.smk"
include: "workflow/rules/quality.smk"
include: "workflow/rules/select.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/report.smk"


localrules:
    all,
    data,
    study_config,
    select,
    aggregate,
    baselines,
    figures,
    report,


rule all:
    input:
        final_outputs(),
