# LocScale refinement cycles (Jakobi, Wilmanns & Sachse, eLife 2017;6:e27131, Fig. 4A):
#   refine B-factors against the fixed cycle-0 global target (coordinates, with refine_xyz, against the previous
#   LocScale map) -> simulate a model map -> LocScale the ORIGINAL map -> validate against the original map ->
#   converged? -> results/<dataset>/final/ holds the cycle chosen by locscale.cycle.selection (docs/workflow.md).
#
#   snakemake --cores 2                                  # bundled example (config/config.yaml)
#   snakemake --cores 16 --configfile config/trpv1.yaml  # the paper's TRPV1 case (downloads EMD-5778 + 3J5P)
#
# Settings: config/config.yaml; every key in docs/configuration.md (from workflow/schemas/config.schema.yaml),
# explained in docs/workflow.md.
# Results: results/<dataset>/cycle_NN/ (cycle_00 = checked inputs, the global-sharpened start target and the
# unrefined model's metrics) and results/<dataset>/summary_upto_NN.tsv + plots for the last cycle NN.

import os
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

import locscale

min_version("9.0")

# The locscale package comes from the environment (pip install -e ".[workflow]", or envs/snakemake.yaml); the
# rules' conda environments (envs/*.yaml) install this checkout from LOCSCALE_ROOT.
os.environ.update(LOCSCALE_ROOT=workflow.basedir)  # set here, not read: no envvars directive
if Path(locscale.__file__).resolve().parents[1] != Path(workflow.basedir).resolve():
    print(f"WARNING: the locscale package imported here ({Path(locscale.__file__).parent}) is not this checkout's "
          f"({workflow.basedir}/locscale); install the checkout: pip install -e '{workflow.basedir}[workflow]'",
          file=sys.stderr)


# The bundled example is the default config; a --configfile REPLACES it (its datasets are not merged into the
# example's). --config key=value still adjusts whichever config is in use.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"



# the schema check with one short line per problem (key, what it expects) instead of the whole schema, plus what
# a schema cannot check (keys repeated in the YAML files, NaN/inf anywhere, min_cycles <= max_cycles, inputs
# inside results/, the model-completion command's placeholders)
from locscale.cycle.config import validate_workflow_config

validate_workflow_config(config, workflow.basedir, validate, workflow.configfiles)


include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/refine.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/sharpen.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/model_validation.smk"
include: "workflow/rules/converged.smk"
include: "workflow/rules/completion.smk"
include: "workflow/rules/report.smk"


# the report's landing page: workflow/report/workflow.rst followed by each dataset's latest cycle table
report: report_landing_page()


localrules:
    all,


# The loop (docs/design.md "How the loop is built"): `all_input` walks the `converged` checkpoints of cycles 1, 2, ... and stops at the
# first converged cycle (or max_cycles, or a cycle waiting for a rebuilt model). Only this rule, which has no
# outputs, walks the loop.
rule all:
    input:
        all_input,
    default_target: True


onstart:
    check_downloads()


onsuccess:
    print_run_summary()


onerror:
    print_run_summary(failed=True)
