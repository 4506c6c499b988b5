"""Experiments: one markdown file with every phantom's description and every table
(locscale.experiments.common.write_summary)."""

from _wf import run


def main(smk):
    from locscale.experiments.common import write_summary

    write_summary(smk.params.outdir, smk.params.phantoms, smk.params.tables, smk.output[0])


run(main)
