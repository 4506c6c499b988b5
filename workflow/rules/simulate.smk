# Step 2 of cycle c: the refined model's map (electron form factors, refined B-factors) on exactly the original
# map's grid, band-limited at Nyquist, sharpened by the B the refine step raised the model's B-factors by to keep
# them off the floor (refine.json's b_model_raise; locscale.cycle.b_level), so it shows the target's B level.


rule simulate:
    input:
        unpack(previous_model_map),
        model="results/{ds}/cycle_{cycle}/model.cif",
        refine="results/{ds}/cycle_{cycle}/refine.json",
        map="results/{ds}/cycle_00/map.mrc",
    output:
        map="results/{ds}/cycle_{cycle}/modelmap.mrc",
    params:
        reuse=config["sharpen"]["reuse_unchanged"],
    log:
        "results/{ds}/cycle_{cycle}/logs/simulate.log",
    benchmark:
        "results/{ds}/cycle_{cycle}/benchmarks/simulate.tsv"
    threads: 1
    resources:
        mem_mb=by_input_size(30, 1000),
        runtime=by_input_size(0.5, 10),
    conda:
        "../../envs/locscale.yaml"
    script:
        "../scripts/simulate.py"
