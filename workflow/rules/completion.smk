# Model completion (config model_completion; the paper's TRPV1 case: density stays sharpened about half a window
# beyond the model, so the model can be extended and the cycle repeated).
#   manual:  after cycle c's LocScale map the run ends with a message saying where to put the rebuilt model
#            (results/<dataset>/cycle_NN/rebuilt_model.cif or .pdb); the next snakemake call continues with it.
#   command: an external model-building command from the config builds it (placeholders in docs/model-completion.md).
#   coot:    locscale.building.completion completes the model against its sequence with coot (own processes, GPLv3):
#            results/<dataset>/cycle_NN/built_model.cif, completion_coot.json (what was built, trimmed, refused),
#            completion_coot.tsv (per residue); the next cycle refines the built model.


checkpoint await_model:
    input:
        unpack(await_model_input),
    output:
        "results/{ds}/cycle_{cycle}/completion.json",
    params:
        candidates=lambda wildcards: user_model_candidates(wildcards.ds, wildcards.cycle),
    log:
        "results/{ds}/cycle_{cycle}/logs/await_model.log",
    benchmark:
        "results/{ds}/cycle_{cycle}/benchmarks/await_model.tsv",
    localrule: True
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../../envs/locscale.yaml"
    script:
        "../scripts/await_model.py"


if COMPLETION["mode"] == "coot":

    rule build_model_coot:
        input:
            locscale="results/{ds}/cycle_{cycle}/locscale.mrc",
            model="results/{ds}/cycle_{cycle}/model.cif",
            info="results/{ds}/cycle_00/inputs.json",
            input_model="results/{ds}/cycle_00/model.cif",  # its entity sequence when model_completion.sequence is null
            sequence=[COMPLETION["sequence"]] if COMPLETION["sequence"] else [],
        output:
            model="results/{ds}/cycle_{cycle}/built_model.cif",
            record="results/{ds}/cycle_{cycle}/completion_coot.json",
            table="results/{ds}/cycle_{cycle}/completion_coot.tsv",
        params:
            settings=COMPLETION["coot"],
            monlib=config["refine"]["monlib"],
            workdir=lambda wildcards, output: str(Path(output.model).parent / "model_building"),
        log:
            "results/{ds}/cycle_{cycle}/logs/build_model_coot.log",
        threads: 1
        resources:
            mem_mb=by_input_size(40, 4000),
            runtime=config["model_completion"]["runtime"],
        conda:
            "../../envs/validation.yaml"
        script:
            "../scripts/build_model_coot.py"

    ruleorder: build_model_coot > build_model


rule build_model:
    input:
        map="results/{ds}/cycle_00/map.mrc",
        locscale="results/{ds}/cycle_{cycle}/locscale.mrc",
        model="results/{ds}/cycle_{cycle}/model.cif",
        info="results/{ds}/cycle_00/inputs.json",
    output:
        model="results/{ds}/cycle_{cycle}/built_model.cif",
    params:
        command=lambda wildcards: COMPLETION["command"],  # a function: its {placeholders} are not wildcards
        workdir=lambda wildcards, output: str(Path(output.model).parent / "model_building"),
    log:
        "results/{ds}/cycle_{cycle}/logs/build_model.log",
    benchmark:
        "results/{ds}/cycle_{cycle}/benchmarks/build_model.tsv",
    threads: config["model_completion"]["threads"]
    resources:
        mem_mb=by_input_size(40, 4000),
        runtime=config["model_completion"]["runtime"],
    conda:
        "../../envs/locscale.yaml"
    script:
        "../scripts/build_model.py"
