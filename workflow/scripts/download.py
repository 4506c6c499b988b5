"""Fetch one file named by accession or URL (locscale.download.fetch: mirrors, checksum, retries, atomic)."""

from _wf import run


def main(smk):
    from locscale.download import DownloadError, fetch

    try:
        fetch(smk.params.urls, smk.output[0], sha256=smk.params.sha256, retries=smk.params.retries,
              timeout=smk.params.timeout, progress=False)
    except DownloadError as err:
        print(f"ERROR: {err}")  # into the log only: Snakemake shows a failed job's log once
        raise SystemExit(1) from None
    print(f"fetched {smk.output[0]} from {smk.params.urls}")


run(main)
