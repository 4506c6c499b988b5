"""Model completion (coot): complete the cycle's refined model against its sequence in the cycle's LocScale map
(locscale.building.completion; coot runs in processes of its own), then check and store the built model."""

from _wf import resolution_of, run


def main(smk):
    from locscale.building.completion import complete_model, write_outputs
    from locscale.mapio import read_map
    from locscale.models import check_model_in_map, read_model

    s = dict(smk.params.settings)
    sequence = smk.input.sequence[0] if len(smk.input.sequence) else None
    built, report, table = complete_model(
        smk.input.model, smk.input.locscale, sequence, smk.params.workdir, resolution_of(smk.input.info),
        trials=s["trials"], seed=s["seed"], monlib=smk.params.monlib,
        sequence_model=smk.input.input_model,
        min_fit=s["min_fit"], min_q_score=s["min_q_score"], max_residues_per_end=s["max_residues_per_end"],
        max_gap_residues=s["max_gap_residues"], refine_cycles=s["refine_cycles"], output=smk.output.model)
    check_model_in_map(read_model(built), read_map(smk.input.locscale))
    write_outputs(report, table, smk.output.record, smk.output.table)
    print(f"built {report['residues_built']} residues, trimmed {report['residues_trimmed']}, refused segments: "
          f"{len(report['refused'])}; mean CC of the built residues {report['built_fit_mean']:.3f}")


run(main)
