"""Fetch one file named by accession (locscale.download.fetch: mirrors, checksum, retries, atomic)."""

from _wf import run


def main(smk):
    from locscale.download import fetch

    fetch(smk.params.urls, smk.output[0], sha256=smk.params.sha256, retries=smk.params.retries,
          timeout=smk.params.timeout, progress=False)
    print(f"fetched {smk.output[0]} from {smk.params.urls}")


run(main)
