# Cycle 0 (results/<dataset>/cycle_00/): the inputs checked (grid, origin, model inside the box and fitting the
# map), the full map (the mean of the half maps when given), the model in the map's frame, the resolution (given,
# or FSC 0.143 of the half maps), the fixed kurtosis mask (model envelope), the data's own blur (B refined against
# the unsharpened map), the global-sharpened start target, and the unrefined model's metrics against the
# original map.


rule prepare_inputs:
    input:
        unpack(prepare_input),
    output:
        map="results/{ds}/cycle_00/map.mrc",
        model="results/{ds}/cycle_00/model.cif",
        kurtosis_mask="results/{ds}/cycle_00/kurtosis_mask.mrc",
        info="results/{ds}/cycle_00/inputs.json",
    params:
        dataset=dataset_params,
    log:
        "results/{ds}/cycle_00/logs/prepare_inputs.log",
    benchmark:
        "results/{ds}/cycle_00/benchmarks/prepare_inputs.tsv",
    threads: 1
    resources:
        mem_mb=by_input_size(12, 1000),
        runtime=by_input_size(0.2, 10),
    conda:
        "../../envs/locscale.yaml"
    script:
        "../scripts/prepare_inputs.py"


# The data's own blur: the input model's B refined against the unsharpened map (coordinates fixed); the global
# target removes its 1st percentile, and cycle 1 keeps the refined mean less that blur as its B level.
rule refine_unsharpened:
    input:
        map="results/{ds}/cycle_00/map.mrc",
        model="results/{ds}/cycle_00/model.cif",
        info="results/{ds}/cycle_00/inputs.json",
        ligands=config["refine"]["ligands"],
    output:
        model="results/{ds}/cycle_00/unsharpened_model.cif",
        info="results/{ds}/cycle_00/data_blur.json",
    params:
        refine=REFINE,
        workdir=lambda wildcards, output: str(Path(output.info).parent / "refine_unsharpened"),
    log:
        "results/{ds}/cycle_00/logs/refine_unsharpened.log",
    benchmark:
        "results/{ds}/cycle_00/benchmarks/refine_unsharpened.tsv"
    threads: ENGINE.job_threads(config["refine"]["threads"])
    resources:
        mem_mb=by_input_size(40, ENGINE.mem_mb_base),
        runtime=by_input_size(2, 60),
    envmodules:
        *ENGINE.envmodules,
    conda:
        f"../../envs/{ENGINE.conda_env}"
    script:
        "../scripts/refine_unsharpened.py"


rule global_sharpen:
    input:
        unpack(half_maps_input),
        map="results/{ds}/cycle_00/map.mrc",
        info="results/{ds}/cycle_00/inputs.json",
        data_blur="results/{ds}/cycle_00/data_blur.json",
    output:
        map="results/{ds}/cycle_00/target.mrc",
        info="results/{ds}/cycle_00/global_sharpen.json",
    log:
        "results/{ds}/cycle_00/logs/global_sharpen.log",
    benchmark:
        "results/{ds}/cycle_00/benchmarks/global_sharpen.tsv",
    threads: 1
    resources:
        mem_mb=by_input_size(12, 1000),
        runtime=by_input_size(0.2, 10),
    conda:
        "../../envs/locscale.yaml"
    script:
        "../scripts/global_sharpen.py"


rule validate_inputs:
    input:
        unpack(truth_input),
        map="results/{ds}/cycle_00/map.mrc",
        model="results/{ds}/cycle_00/model.cif",
        model_validation="results/{ds}/cycle_00/model_validation.json",
        model_validation_residues="results/{ds}/cycle_00/model_validation.tsv",
        sharpened="results/{ds}/cycle_00/target.mrc",
        reference="results/{ds}/cycle_00/target.mrc",
        kurtosis_mask="results/{ds}/cycle_00/kurtosis_mask.mrc",
        info="results/{ds}/cycle_00/inputs.json",
    output:
        metrics="results/{ds}/cycle_00/metrics.json",
        fsc="results/{ds}/cycle_00/fsc.tsv",
        per_residue="results/{ds}/cycle_00/per_residue.tsv",
    params:
        cycle=0,
    log:
        "results/{ds}/cycle_00/logs/validate.log",
    benchmark:
        "results/{ds}/cycle_00/benchmarks/validate.tsv",
    threads: 1
    resources:
        mem_mb=by_input_size(8, 1000),
        runtime=by_input_size(0.2, 10),
    conda:
        "../../envs/locscale.yaml"
    script:
        "../scripts/validate.py"
