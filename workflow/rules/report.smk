# Reports: the per-cycle table (TSV) and plots for cycles 0 ... last, and a ChimeraX script per cycle. The
# summary is named by its last cycle (summary_upto_NN), so extending the loop writes a new one.


rule summary:
    input:
        unpack(summary_input),
    output:
        table=report(
            "results/{ds}/summary_upto_{last}.tsv",
            caption="../report/cycle_table.rst",
            category="1. Cycle summary",
        ),
        metrics=report(
            "results/{ds}/summary_upto_{last}/metrics_vs_cycle.png",
            caption="../report/metrics_vs_cycle.rst",
            category="1. Cycle summary",
        ),
        fsc=report(
            "results/{ds}/summary_upto_{last}/fsc_curves.png",
            caption="../report/fsc_curves.rst",
            category="2. Fourier space",
        ),
        radial=report(
            "results/{ds}/summary_upto_{last}/radial_profiles.png",
            caption="../report/radial_profiles.rst",
            category="2. Fourier space",
        ),
        bfactors=report(
            "results/{ds}/summary_upto_{last}/bfactor_distributions.png",
            caption="../report/bfactor_distributions.rst",
            category="3. Model B-factors",
        ),
        sections=report(
            "results/{ds}/summary_upto_{last}/central_sections.png",
            caption="../report/central_sections.rst",
            category="4. Map sections",
        ),
        per_residue=report(
            "results/{ds}/summary_upto_{last}/per_residue.png",
            caption="../report/per_residue.rst",
            category="5. Model validation",
        ),
        selection="results/{ds}/summary_upto_{last}/selection.json",
    params:
        last=lambda wildcards: int(wildcards.last),
        selection=config["selection"],
        config_summary=lambda wildcards: {
            "refine": REFINE,
            "sharpen": config["sharpen"],
            "tolerances": config["tolerances"],
            "selection": config["selection"],
            "min_cycles": config["min_cycles"],
        },
    log:
        "results/{ds}/logs/summary_upto_{last}.log",
    benchmark:
        "results/{ds}/benchmarks/summary_upto_{last}.tsv",
    threads: 1
    resources:
        mem_mb=by_input_size(3, 2000),
        runtime=by_input_size(0.05, 10),
    conda:
        "../../envs/locscale.yaml"
    script:
        "../scripts/summary.py"


rule chimerax:
    input:
        map="results/{ds}/cycle_{cycle}/locscale.mrc",
        model="results/{ds}/cycle_{cycle}/model.cif",
    output:
        "results/{ds}/cycle_{cycle}/chimerax.cxc",
    params:
        style=config["report"]["chimerax_style"],
    log:
        "results/{ds}/cycle_{cycle}/logs/chimerax.log",
    benchmark:
        "results/{ds}/cycle_{cycle}/benchmarks/chimerax.tsv",
    threads: 1
    resources:
        mem_mb=by_input_size(6, 500),
        runtime=5,
    conda:
        "../../envs/locscale.yaml"
    script:
        "../scripts/chimerax.py"


# results/<dataset>/final/: the cycle chosen by locscale.cycle.selection (its LocScale map, model, model map, metrics) and
# selection.json saying which cycle and why. Its input names the summary of the last cycle of the loop, which only
# rule all's walk knows (docs/design.md "How the loop is built"): request `all`, not this file alone.
rule final:
    input:
        unpack(final_input),
    output:
        # the chosen cycle's LocScale map, model, model map, metrics (with the hybrid reference its pseudo-atoms and
        # unexplained-density mask) and selection.json (locscale.cycle.files)
        **files.final_outputs("{ds}", HYBRID),
    log:
        "results/{ds}/logs/final.log",
    benchmark:
        "results/{ds}/benchmarks/final.tsv",
    localrule: True
    threads: 1
    resources:
        mem_mb=by_input_size(3, 500),
        runtime=10,
    conda:
        "../../envs/locscale.yaml"
    script:
        "../scripts/final.py"
