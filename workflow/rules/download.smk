# Maps and models named by accession (dataset keys emdb / pdb) or URL (urls) are fetched into resources/<dataset>/
# with checksums (dataset key sha256) and retries. Local rules: cluster compute nodes are often offline.
#
#   snakemake --cores 1 --configfile config/trpv1.yaml download    # fetch only (a login node), then run anywhere
#
# Offline, a run stops before any job (onstart: check_downloads) with one message naming every missing file.


rule download:
    localrule: True
    input:
        download_targets(),


rule download_file:
    output:
        "resources/{ds}/{filename}",
    params:
        urls=lambda wildcards: DOWNLOADS[(wildcards.ds, wildcards.filename)]["urls"],
        sha256=lambda wildcards: DOWNLOADS[(wildcards.ds, wildcards.filename)]["sha256"],
        retries=config["download"]["retries"],
        timeout=config["download"]["timeout"],
    log:
        "resources/{ds}/logs/download_{filename}.log",
    benchmark:
        "resources/{ds}/benchmarks/download_{filename}.tsv",
    localrule: True
    threads: 1
    resources:
        mem_mb=500,
        runtime=60,
    conda:
        "../../envs/locscale.yaml"
    script:
        "../scripts/download.py"
