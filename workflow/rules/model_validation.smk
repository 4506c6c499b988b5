# Model validation of every cycle's model, cycle 0 (the input model) included: geometry (servalcat util geom: bond
# and angle RMSZ), Ramachandran, rotamers, atom overlaps and Q-score (Coot), EMRinger (cctbx), all against the
# ORIGINAL map. Each tool runs in its own process (Coot and cctbx crash in one process) and is
# optional: a tool that is not installed gives "not available" and NaN columns, and the cycle goes on. The validate
# step merges the summary into metrics.json and the per-residue values into per_residue.tsv. A model with the
# previous cycle's coordinates (B-factor-only refinement) reuses that cycle's values and recomputes only coot's
# per-residue density correlation, the one value that reads the B-factors (model_validation.reuse_unchanged).


rule model_validation:
    input:
        unpack(previous_model_validation),
        map="results/{ds}/cycle_00/map.mrc",
        model="results/{ds}/cycle_{vcycle}/model.cif",
        info="results/{ds}/cycle_00/inputs.json",
    output:
        summary="results/{ds}/cycle_{vcycle}/model_validation.json",
        per_residue="results/{ds}/cycle_{vcycle}/model_validation.tsv",
    params:
        settings=config["model_validation"],
        monlib=REFINE["monlib"],
        ligands=config["refine"]["ligands"],
        workdir=lambda wildcards, output: str(Path(output.summary).parent / "model_validation"),
    wildcard_constraints:
        vcycle=r"[0-9][0-9]",
    log:
        "results/{ds}/cycle_{vcycle}/logs/model_validation.log",
    benchmark:
        "results/{ds}/cycle_{vcycle}/benchmarks/model_validation.tsv"
    threads: 1
    resources:
        mem_mb=by_input_size(20, 3000),
        runtime=by_input_size(1, 20),
    conda:
        "../../envs/validation.yaml"
    script:
        "../scripts/model_validation.py"
