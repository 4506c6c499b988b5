"""Cycle step 4 (and cycle 0): validation against the ORIGINAL map
(locscale.validation.map_metrics.validation_metrics), with
the model validation of rule model_validation merged in (locscale.validation.model)."""

from _wf import read_json, resolution_of, run, write_json, write_tsv


def main(smk):
    from locscale import metrics
    from locscale.mapio import read_map
    from locscale.models import envelope_mask, read_model
    from locscale.validation.map_metrics import validation_metrics

    emap = read_map(smk.input.map)
    resolution = resolution_of(smk.input.info)
    previous = smk.input.get("previous")
    modelmap = smk.input.get("modelmap")
    truth = truth_mask = regions = None
    if "truth" in smk.input.keys():  # phantoms: score against the known truth in the true model's envelope
        from locscale.phantoms.truth import region_masks

        truth = read_map(smk.input.truth)
        true_model = read_model(smk.input.truth_model)
        truth_mask = envelope_mask(true_model, emap, metrics.envelope_radius(resolution))
        # and by region: thirds of the truth B, and what the input model (cycle 0) lacks
        regions = region_masks(true_model, emap, truth_mask, read_model(smk.input.start_model))
    record, curve, per_residue = validation_metrics(
        emap, read_model(smk.input.model), resolution,
        sharpened=read_map(smk.input.sharpened), kurtosis_mask=read_map(smk.input.kurtosis_mask).data >= 0.5,
        previous=read_model(previous) if previous else None,
        model_map=read_map(modelmap) if modelmap else None, reference=read_map(smk.input.reference),
        truth=truth, truth_mask=truth_mask, truth_regions=regions)
    from locscale.validation.model import cycle_record, merge_per_residue

    record = {"cycle": int(smk.params.cycle), **record, **cycle_record(read_json(smk.input.model_validation))}
    per_residue = merge_per_residue(per_residue, smk.input.model_validation_residues)
    write_json(smk.output.metrics, record)
    write_tsv(curve.to_frame(), smk.output.fsc)
    write_tsv(per_residue, smk.output.per_residue)
    print(record)


run(main)
