"""Model validation of one cycle's model (locscale.validation.model.validate_model): every tool in its own process,
each optional ("not available" and NaN columns when it is missing)."""

from _wf import resolution_of, run, write_json, write_tsv


def main(smk):
    from locscale.validation.model import validate_model

    settings = smk.params.settings
    summary, per_residue = validate_model(smk.input.model, smk.input.map, resolution_of(smk.input.info),
                                          smk.params.workdir, monlib=smk.params.monlib, ligands=smk.params.ligands,
                                          tools=settings["tools"], log=smk.log[0])
    write_json(smk.output.summary, summary)
    write_tsv(per_residue, smk.output.per_residue)
    print(summary)


run(main)
