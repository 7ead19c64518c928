# The CEBRA multi-session hippocampus demo as a file-based DAG:
# data -> sessions checked -> 4 single-session fits + 1 multi-session fit per seed (whole sessions:
# the notebook's figures) and the same fits on each session's train part (held-out decoding)
# -> alignment -> consistency, decoding, statistics -> figures -> report; and a new session: a
# multi-session fit without one rat, that rat adapted into it, scored on its test part
# (new_session.smk); and, as its own target, a parameter sweep (snakemake sweep, sweep.smk).
# The plan (which fits, splits and targets, every output path) is cebra_workflow's; all science lives in cebra_core.

from snakemake.utils import min_version

min_version("9.17")  # a rule's priority may be a function of its wildcards (fit.smk)


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/new_session.smk"
include: "workflow/rules/sweep.smk"
include: "workflow/rules/online.smk"


rule all:
    default_target: True
    input:
        plan.final_targets(),


# The parts, each a target of its own (docs/workflow.md).
rule figures:
    input:
        plan.figure_targets(),


rule evaluation:
    input:
        plan.evaluation_targets(),


rule new_session:
    input:
        plan.new_session_targets(),
