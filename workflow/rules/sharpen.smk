# Step 3 of cycle c: LocScale of the ORIGINAL map (never of a previous LocScale map) against cycle c's model map.
# The result is cycle c+1's refinement target.


rule sharpen:
    input:
        unpack(mask_input),
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
        mem_mb=mem_mb(20, 2000),
        runtime=runtime_min(3, 30),
    conda:
        "../../envs/locscale.yaml"
    script:
        "../scripts/sharpen.py"
