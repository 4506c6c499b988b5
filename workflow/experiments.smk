# The paper's experiments (Jakobi et al. 2017) on SIMULATED phantoms with a known truth -- a separate target,
# not part of the refinement-cycle run:
#
#   snakemake -s workflow/experiments.smk --configfile config/experiments.yaml --cores 2
#
# Per phantom (config `phantoms`), under <outdir>/<phantom>/:
#   phantom/            SIMULATED truth, half maps, models and JSON (locscale.phantoms.phantom)
#   refined/            the true model's B refined by servalcat against the half maps
#   truth_table         input / best global B / local Guinier / LocScale modes, scored against the truth
#   window_sweep        kurtosis and truth scores vs LocScale window (8 voxels to ~45 Å)
#   model_bias          references with F->A, V->W, poly-Ala, perturbed coordinates
#   b_misestimation     uniform reference B (0-300 Å²) vs refined / true B
#   model_completion    a model with residues removed: CC to truth beyond the model, per cycle
#   partial_models      a chain / 20 % in gaps / a domain removed: CC to truth in the removed region and the rest,
#                       model-only LocScale, hybrid reference, global target, complete model; negative control
#   local_resolution    windowed half-map FSC map, per residue, vs refined B
#   crossval            FSCwork / FSCtest by the shake protocol
# each as a TSV table and a PNG plot; <outdir>/summary.md collects every table.

import os
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

import locscale

min_version("9.0")

ROOT = Path(workflow.basedir).parent
# locscale comes from the environment (pip install -e ".[workflow]"); the rules' conda environments (envs/*.yaml)
# install this checkout from LOCSCALE_ROOT
os.environ.update(LOCSCALE_ROOT=str(ROOT))  # set here, not read: no envvars directive
if Path(locscale.__file__).resolve().parents[1] != ROOT.resolve():
    print(f"WARNING: the locscale package imported here ({Path(locscale.__file__).parent}) is not this checkout's "
          f"({ROOT}/locscale); install the checkout: pip install -e '{ROOT}[workflow]'", file=sys.stderr)

# config/experiments.yaml is the default config; a --configfile replaces it
if not workflow.overwrite_configfiles:

    configfile: "config/experiments.yaml"


validate(config, "schemas/experiments.schema.yaml")


OUT = config["outdir"]
# the refinement engine (refine.engine) chooses the refining rules' conda environment, as in the cycle's refine rule
from locscale.engines import make_engine

REFINE_ENV = f"../envs/{make_engine(config['refine']).conda_env}"
PHANTOMS = list(config["phantoms"])
TABLES = [
    "truth_table",
    "window_sweep",
    "model_bias",
    "b_misestimation",
    "model_completion",
    "partial_models",
    "local_resolution",
    "crossval",
]
PHANTOM_FILES = {
    "half1": "SIMULATED_half1.mrc",
    "half2": "SIMULATED_half2.mrc",
    "truth": "SIMULATED_truth.mrc",
    "full": "SIMULATED_full.mrc",
    "signal": "SIMULATED_signal.mrc",
    "model_true": "SIMULATED_model_true.pdb",
    "model": "SIMULATED_model.pdb",
    "json": "SIMULATED_phantom.json",
}


wildcard_constraints:
    ph=r"[A-Za-z0-9][A-Za-z0-9_.-]*",


def phantom_files(wildcards):
    return {k: f"{OUT}/{wildcards.ph}/phantom/{v}" for k, v in PHANTOM_FILES.items()}


def phantom_model(wildcards):
    return config["phantoms"][wildcards.ph]["model"]


localrules:
    all,
    summary,


rule all:
    input:
        f"{OUT}/summary.md",
    default_target: True


rule phantom:
    input:
        model=phantom_model,
    output:
        **{k: f"{OUT}/{{ph}}/phantom/{v}" for k, v in PHANTOM_FILES.items()},
    params:
        phantom=lambda wildcards: config["phantoms"][wildcards.ph],
    log:
        f"{OUT}/{{ph}}/logs/phantom.log",
    benchmark:
        f"{OUT}/{{ph}}/benchmarks/phantom.tsv",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/locscale.yaml"
    script:
        "scripts/experiment_phantom.py"


rule refine_phantom:
    input:
        unpack(phantom_files),
    output:
        model=f"{OUT}/{{ph}}/refined/model.cif",
        info=f"{OUT}/{{ph}}/refined/refine.json",
    params:
        refine=config["refine"],
        workdir=lambda wildcards, output: str(Path(output.info).parent / "servalcat"),
    log:
        f"{OUT}/{{ph}}/logs/refine_phantom.log",
    benchmark:
        f"{OUT}/{{ph}}/benchmarks/refine_phantom.tsv",
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    conda:
        REFINE_ENV
    script:
        "scripts/experiment_refine.py"


rule truth_table:
    input:
        unpack(phantom_files),
        refined=f"{OUT}/{{ph}}/refined/model.cif",
        refined_info=f"{OUT}/{{ph}}/refined/refine.json",
    output:
        table=f"{OUT}/{{ph}}/truth_table.tsv",
        plot=f"{OUT}/{{ph}}/truth_table.png",
        scan=f"{OUT}/{{ph}}/truth_table_global_b_scan.tsv",
    params:
        window=config["window"],
    log:
        f"{OUT}/{{ph}}/logs/truth_table.log",
    benchmark:
        f"{OUT}/{{ph}}/benchmarks/truth_table.tsv",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/locscale.yaml"
    script:
        "scripts/experiment_truth_table.py"


rule window_sweep:
    input:
        unpack(phantom_files),
        refined=f"{OUT}/{{ph}}/refined/model.cif",
    output:
        table=f"{OUT}/{{ph}}/window_sweep.tsv",
        plot=f"{OUT}/{{ph}}/window_sweep.png",
    params:
        settings=config["window_sweep"],
        mode=config["mode"],
        window=config["window"],
        reference=config["reference"],
    log:
        f"{OUT}/{{ph}}/logs/window_sweep.log",
    benchmark:
        f"{OUT}/{{ph}}/benchmarks/window_sweep.tsv",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/locscale.yaml"
    script:
        "scripts/experiment_window_sweep.py"


rule model_bias:
    input:
        unpack(phantom_files),
        refined=f"{OUT}/{{ph}}/refined/model.cif",
    output:
        table=f"{OUT}/{{ph}}/model_bias.tsv",
        plot=f"{OUT}/{{ph}}/model_bias.png",
    params:
        settings=config["model_bias"],
        mode=config["mode"],
        window=config["window"],
        reference=config["reference"],
    log:
        f"{OUT}/{{ph}}/logs/model_bias.log",
    benchmark:
        f"{OUT}/{{ph}}/benchmarks/model_bias.tsv",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/locscale.yaml"
    script:
        "scripts/experiment_model_bias.py"


rule b_misestimation:
    input:
        unpack(phantom_files),
        refined=f"{OUT}/{{ph}}/refined/model.cif",
    output:
        table=f"{OUT}/{{ph}}/b_misestimation.tsv",
        plot=f"{OUT}/{{ph}}/b_misestimation.png",
    params:
        settings=config["b_misestimation"],
        mode=config["mode"],
        window=config["window"],
    log:
        f"{OUT}/{{ph}}/logs/b_misestimation.log",
    benchmark:
        f"{OUT}/{{ph}}/benchmarks/b_misestimation.tsv",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/locscale.yaml"
    script:
        "scripts/experiment_b_misestimation.py"


rule model_completion:
    input:
        unpack(phantom_files),
        refined=f"{OUT}/{{ph}}/refined/model.cif",
    output:
        table=f"{OUT}/{{ph}}/model_completion.tsv",
        plot=f"{OUT}/{{ph}}/model_completion.png",
    params:
        settings=config["model_completion"],
        refine=config["refine"],
        mode=config["mode"],
        window=config["window"],
        reference=config["reference"],
        workdir=lambda wildcards, output: str(Path(output.table).parent / "model_completion"),
    log:
        f"{OUT}/{{ph}}/logs/model_completion.log",
    benchmark:
        f"{OUT}/{{ph}}/benchmarks/model_completion.tsv",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        REFINE_ENV
    script:
        "scripts/experiment_model_completion.py"


rule partial_models:
    input:
        unpack(phantom_files),
        refined=f"{OUT}/{{ph}}/refined/model.cif",
    output:
        table=f"{OUT}/{{ph}}/partial_models.tsv",
        plot=f"{OUT}/{{ph}}/partial_models.png",
    params:
        settings=config["partial_models"],
        mode=config["mode"],
        window=config["window"],
        reference=config["partial_models"]["reference"],
    log:
        f"{OUT}/{{ph}}/logs/partial_models.log",
    benchmark:
        f"{OUT}/{{ph}}/benchmarks/partial_models.tsv",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/locscale.yaml"
    script:
        "scripts/experiment_partial_models.py"


rule local_resolution:
    input:
        unpack(phantom_files),
        refined=f"{OUT}/{{ph}}/refined/model.cif",
    output:
        table=f"{OUT}/{{ph}}/local_resolution.tsv",
        plot=f"{OUT}/{{ph}}/local_resolution.png",
        map=f"{OUT}/{{ph}}/SIMULATED_local_resolution.mrc",
    params:
        settings=config["local_resolution"],
        window=config["window"],
    log:
        f"{OUT}/{{ph}}/logs/local_resolution.log",
    benchmark:
        f"{OUT}/{{ph}}/benchmarks/local_resolution.tsv",
    threads: 2
    resources:
        mem_mb=3000,
        runtime=20,
    conda:
        "../envs/locscale.yaml"
    script:
        "scripts/experiment_local_resolution.py"


rule crossval_phantom:
    input:
        unpack(phantom_files),
        refined=f"{OUT}/{{ph}}/refined/model.cif",
    output:
        table=f"{OUT}/{{ph}}/crossval.tsv",
        plot=f"{OUT}/{{ph}}/crossval.png",
    params:
        settings=config["crossval"],
        refine=config["refine"],
        workdir=lambda wildcards, output: str(Path(output.table).parent / "crossval"),
    log:
        f"{OUT}/{{ph}}/logs/crossval.log",
    benchmark:
        f"{OUT}/{{ph}}/benchmarks/crossval.tsv",
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    conda:
        REFINE_ENV
    script:
        "scripts/experiment_crossval.py"


rule summary:
    input:
        tables=expand(f"{OUT}/{{ph}}/{{table}}.tsv", ph=PHANTOMS, table=TABLES),
        phantoms=expand(f"{OUT}/{{ph}}/phantom/SIMULATED_phantom.json", ph=PHANTOMS),
    output:
        f"{OUT}/summary.md",
    params:
        phantoms=PHANTOMS,
        tables=TABLES,
        outdir=lambda wildcards, output: str(Path(output[0]).parent),
    log:
        f"{OUT}/logs/summary.log",
    benchmark:
        f"{OUT}/benchmarks/summary.tsv",
    conda:
        "../envs/locscale.yaml"
    script:
        "scripts/experiment_summary.py"
