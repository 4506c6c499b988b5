# Step 4 of cycle c: validation against the ORIGINAL map (docs/design.md "Metrics: one definition each"): RSCC (CC_mask, CC_box, per residue),
# model-map FSC and FSCaverage, kurtosis of the LocScale map inside the fixed cycle-0 mask, B statistics and the
# change of B from the model that entered the cycle; plus the model validation of rule model_validation (geometry,
# Ramachandran, rotamers, overlaps, EMRinger, Q-score), merged into metrics.json and per_residue.tsv.


rule validate:
    input:
        unpack(truth_input),
        map="results/{ds}/cycle_00/map.mrc",
        model="results/{ds}/cycle_{cycle}/model.cif",
        model_validation="results/{ds}/cycle_{cycle}/model_validation.json",
        model_validation_residues="results/{ds}/cycle_{cycle}/model_validation.tsv",
        previous=refine_model,
        modelmap="results/{ds}/cycle_{cycle}/modelmap.mrc",
        sharpened="results/{ds}/cycle_{cycle}/locscale.mrc",
        reference="results/{ds}/cycle_00/target.mrc",
        kurtosis_mask="results/{ds}/cycle_00/kurtosis_mask.mrc",
        info="results/{ds}/cycle_00/inputs.json",
    output:
        metrics="results/{ds}/cycle_{cycle}/metrics.json",
        fsc="results/{ds}/cycle_{cycle}/fsc.tsv",
        per_residue="results/{ds}/cycle_{cycle}/per_residue.tsv",
    params:
        cycle=lambda wildcards: int(wildcards.cycle),
    log:
        "results/{ds}/cycle_{cycle}/logs/validate.log",
    benchmark:
        "results/{ds}/cycle_{cycle}/benchmarks/validate.tsv"
    threads: 1
    resources:
        mem_mb=by_input_size(8, 1000),
        runtime=by_input_size(0.2, 10),
    conda:
        "../../envs/locscale.yaml"
    script:
        "../scripts/validate.py"
