# Step 3 of cycle c: LocScale of the ORIGINAL map (never of a previous LocScale map) against cycle c's model map.
# The result is cycle c+1's refinement target. With the hybrid reference (sharpen.hybrid; by default whenever
# model_completion is on), rule pseudo_atoms first puts pseudo-atoms where the map has significant density the model
# does not explain (locscale.hybrid), and the reference and the mask include them; the pseudo-atoms stay in
# pseudo_atoms.cif and never enter the cycle's model files. The builder reads this (hybrid) LocScale map.

if HYBRID:

    rule pseudo_atoms:
        input:
            unpack(half_maps_input),
            unpack(pseudo_atom_b_target),
            map="results/{ds}/cycle_00/map.mrc",
            model="results/{ds}/cycle_{cycle}/model.cif",
            modelmap="results/{ds}/cycle_{cycle}/modelmap.mrc",
            info="results/{ds}/cycle_00/inputs.json",
        output:
            atoms="results/{ds}/cycle_{cycle}/pseudo_atoms.cif",
            mask="results/{ds}/cycle_{cycle}/unexplained_mask.mrc",
            info="results/{ds}/cycle_{cycle}/pseudo_atoms.json",
        params:
            sharpen=config["sharpen"],
            refine=REFINE,
            workdir=lambda wildcards, output: str(Path(output.info).parent / "pseudo_atoms"),
        log:
            "results/{ds}/cycle_{cycle}/logs/pseudo_atoms.log",
        benchmark:
            "results/{ds}/cycle_{cycle}/benchmarks/pseudo_atoms.tsv"
        threads: config["refine"]["threads"] if config["sharpen"]["pseudo_atom_b"] == "refined" else 1
        resources:
            mem_mb=by_input_size(30, 2000),
            runtime=by_input_size(2, 30),
        conda:
            f"../../envs/{ENGINE.conda_env if config['sharpen']['pseudo_atom_b'] == 'refined' else 'locscale.yaml'}"
        script:
            "../scripts/pseudo_atoms.py"


rule sharpen:
    input:
        unpack(mask_input),
        unpack(hybrid_input),
        unpack(half_maps_input),
        unpack(previous_locscale),
        map="results/{ds}/cycle_00/map.mrc",
        modelmap="results/{ds}/cycle_{cycle}/modelmap.mrc",
        model="results/{ds}/cycle_{cycle}/model.cif",
        info="results/{ds}/cycle_00/inputs.json",
    output:
        map="results/{ds}/cycle_{cycle}/locscale.mrc",
        info="results/{ds}/cycle_{cycle}/sharpen.json",
    params:
        sharpen=config["sharpen"],
    log:
        "results/{ds}/cycle_{cycle}/logs/sharpen.log",
    benchmark:
        "results/{ds}/cycle_{cycle}/benchmarks/sharpen.tsv"
    threads: sharpen_threads()
    resources:
        mem_mb=by_input_size(20, 2000),
        runtime=by_input_size(3, 30),
    conda:
        "../../envs/locscale.yaml"
    script:
        "../scripts/sharpen.py"
