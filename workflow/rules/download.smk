# Maps and models named by accession (dataset keys emdb / pdb) are fetched into resources/<dataset>/ with
# checksums (dataset key sha256) and retries; offline, the download fails with a message saying where to put the
# file by hand. A local rule: cluster compute nodes are often offline.


rule download:
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
