# Step 5 of cycle c: converged? A cheap local checkpoint comparing cycle c's validation with cycle c-1's under the
# configured tolerances. max_cycles is deliberately NOT a parameter here (changing it must not re-run the checks);
# the loop itself is walked only in rule all's input function (docs/design.md "How the loop is built").


checkpoint converged:
    input:
        unpack(crossval_beside),
        current="results/{ds}/cycle_{cycle}/metrics.json",
        previous=previous_metrics,
    output:
        "results/{ds}/cycle_{cycle}/converged.json",
    params:
        tolerances=config["tolerances"],
        min_cycles=config["min_cycles"],
        model_rebuilt=model_rebuilt,
    log:
        "results/{ds}/cycle_{cycle}/logs/converged.log",
    benchmark:
        "results/{ds}/cycle_{cycle}/benchmarks/converged.tsv",
    localrule: True
    threads: 1
    resources:
        mem_mb=200,
        runtime=5,
    conda:
        "../../envs/locscale.yaml"
    script:
        "../scripts/converged.py"
