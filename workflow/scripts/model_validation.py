"""Model validation of one cycle's model (locscale.validation.model.validate_model): every tool in its own process,
each optional ("not available" and NaN columns when it is missing); the previous cycle's values when the
coordinates, map and settings are unchanged, with only the B-dependent values recomputed
(locscale.validation.reuse)."""

from _wf import resolution_of, run, write_json, write_tsv


def main(smk):
    from locscale.validation.reuse import validate_model_reusing

    settings = smk.params.settings
    previous = ((smk.input.previous_summary, smk.input.previous_residues)
                if "previous_summary" in smk.input.keys() else None)
    summary, per_residue = validate_model_reusing(
        smk.input.model, smk.input.map, resolution_of(smk.input.info), smk.params.workdir,
        cycle=int(smk.wildcards.vcycle), previous=previous, monlib=smk.params.monlib, ligands=smk.params.ligands,
        tools=settings["tools"], log=smk.log[0])
    write_json(smk.output.summary, summary)
    write_tsv(per_residue, smk.output.per_residue)
    print(summary)


run(main)
