"""Cycle step 3a (hybrid reference): pseudo-atoms where the original map has significant density the cycle's model
does not explain (locscale.hybrid), their B (the model's median, or refined by the engine with the model held), and
the unexplained-density mask."""

from _wf import resolution_of, run, write_json


def main(smk):
    import numpy as np

    from locscale import hybrid
    from locscale.mapio import read_half_maps, read_map, write_map
    from locscale.models import read_model, write_model

    cfg = smk.params.sharpen
    emap, modelmap = read_map(smk.input.map), read_map(smk.input.modelmap)
    model = read_model(smk.input.model)
    resolution = resolution_of(smk.input.info)
    half_maps = read_half_maps(smk.input.half1, smk.input.half2) if "half1" in smk.input.keys() else None
    why_on = "sharpen.hybrid: true" if cfg["hybrid"] else "on with model completion (sharpen.hybrid: null)"
    try:
        ref = hybrid.hybrid_reference(emap, model, resolution, half_maps=half_maps, fdr=cfg["hybrid_fdr"],
                                      modelmap=modelmap)
    except hybrid.NoiseNotMeasurable as err:
        if cfg["hybrid"]:  # asked for explicitly: stop with the reason and the fix
            raise
        # the default: the cycle goes on with the model alone as the reference, and says why
        print(f"WARNING: hybrid reference not used in cycle {smk.wildcards.cycle}: {err.problem}")
        ref = hybrid.HybridReference(hybrid.pseudo_atom_structure([], 0.0), np.zeros(emap.shape, dtype=bool),
                                     {"pseudo_atoms": 0, "not_used": err.problem, "fix": err.fix})
    record = {"cycle": int(smk.wildcards.cycle), "hybrid": why_on, **ref.record}
    pseudo = ref.pseudo_atoms
    if cfg["pseudo_atom_b"] == "refined" and ref.count:
        from locscale.engines import make_engine

        pseudo, refined = hybrid.refine_pseudo_atom_b(make_engine(smk.params.refine), model, pseudo,
                                                      smk.input.target, resolution, smk.params.workdir,
                                                      threads=smk.threads, log=smk.log[0])
        record.update(refined, b_target=smk.input.target)
    write_model(pseudo, smk.output.atoms)
    write_map(smk.output.mask, emap, ref.unexplained.astype("float32"),
              label=f"unexplained density, cycle {smk.wildcards.cycle}")
    write_json(smk.output.info, record)
    print(record)


run(main)
