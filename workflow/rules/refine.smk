# Step 1 of cycle c: refine the model's B-factors (and coordinates with refine.refine_xyz). refine.b_target: global
# (default) refines B against the fixed cycle-0 global target in every cycle (coordinates, if refined, against the
# previous LocScale map in a step of their own); locscale refines both against the previous cycle's LocScale map
# (the cycle-0 target in cycle 1), which drifts (README). refine.b_level fixed: cycles after the first keep cycle 1's
# reference B level (from its refine.json; locscale.cycle.b_level). Each engine run has its own folder
# (results/<dataset>/cycle_NN/refine/), emptied first. With half maps, the refined model is also cross-validated by
# the shake protocol (FSCwork/FSCtest).

# The engine (refine.engine, locscale.engines) chooses the rule's conda environment and environment modules.
rule refine:
    input:
        unpack(refine_targets),
        unpack(first_cycle_record),
        unpack(previous_refine),
        model=refine_model,
        info="results/{ds}/cycle_00/inputs.json",
        ligands=config["refine"]["ligands"],
    output:
        model="results/{ds}/cycle_{cycle}/model.cif",
        info="results/{ds}/cycle_{cycle}/refine.json",
    params:
        refine=REFINE,
        workdir=lambda wildcards, output: str(Path(output.info).parent / "refine"),
    log:
        "results/{ds}/cycle_{cycle}/logs/refine.log",
    benchmark:
        "results/{ds}/cycle_{cycle}/benchmarks/refine.tsv"
    threads: refine_threads
    resources:
        mem_mb=by_input_size(40, ENGINE.mem_mb_base),
        runtime=by_input_size(2, 60),
    envmodules:
        *ENGINE.envmodules,
    conda:
        f"../../envs/{ENGINE.conda_env}"
    script:
        "../scripts/refine.py"


rule crossval:
    input:
        unpack(half_maps_input),
        unpack(previous_crossval),
        model="results/{ds}/cycle_{cycle}/model.cif",
        info="results/{ds}/cycle_00/inputs.json",
    output:
        info="results/{ds}/cycle_{cycle}/crossval.json",
        curve="results/{ds}/cycle_{cycle}/crossval.tsv",
        plot="results/{ds}/cycle_{cycle}/crossval.png",
    params:
        crossval=config["cross_validation"],
        refine=REFINE,
        workdir=lambda wildcards, output: str(Path(output.info).parent / "crossval"),
    log:
        "results/{ds}/cycle_{cycle}/logs/crossval.log",
    benchmark:
        "results/{ds}/cycle_{cycle}/benchmarks/crossval.tsv",
    # it starts once the cycle's model is refined (all_input asks for it with the cycle) and is the longest job
    # beside the cycle's chain of steps, which take one core at a time: it takes a free core first
    priority: 1
    threads: CROSSVAL_ENGINE.job_threads(config["refine"]["threads"])
    resources:
        mem_mb=by_input_size(40, 3000),
        runtime=by_input_size(2, 60),
    conda:
        f"../../envs/{CROSSVAL_ENGINE.conda_env}"
    script:
        "../scripts/crossval.py"
