"""Cycle step 3: LocScale of the ORIGINAL map against the cycle's model map (locscale.sharpen.sharpen_map); with the
hybrid reference, against the model map plus the pseudo-atoms' map, in a mask around both (locscale.hybrid)."""

from _wf import read_json, resolution_of, run, write_json


def main(smk):
    from locscale import sharpen
    from locscale.mapio import read_map, write_map
    from locscale.models import read_model

    cfg = smk.params.sharpen
    emap, modelmap = read_map(smk.input.map), read_map(smk.input.modelmap)
    structure = read_model(smk.input.model)
    resolution = resolution_of(smk.input.info)
    hybrid_record = None
    if "pseudo_atoms" in smk.input.keys():  # the hybrid reference: model + pseudo-atoms, map and mask
        from locscale import hybrid

        hybrid_record = {"pseudo_atoms_file": smk.input.pseudo_atoms, **read_json(smk.input.pseudo_info)}
        if hybrid_record["pseudo_atoms"]:
            pseudo = read_model(smk.input.pseudo_atoms)
            modelmap = hybrid.add_pseudo_atom_map(modelmap, pseudo)
            structure = hybrid.merge(structure, pseudo)
    win = sharpen.choose_window(emap.apix, resolution, cfg.get("window"), cfg.get("window_angstrom"), cfg["mode"])
    mask, mask_rule = sharpen.choose_mask(
        emap, mask_path=smk.input.get("mask"), structure=structure,
        mask_radius=cfg.get("mask_radius"), window_voxels=win.voxels)
    if hybrid_record:
        mask_rule = hybrid.mask_rule(mask_rule, hybrid_record["pseudo_atoms"])
    options = {"workers": smk.threads, **({"stride": cfg["stride"]} if cfg.get("stride") else {})}
    half = None
    if "half1" in smk.input.keys():  # the tapered mode's noise weights come from the half maps
        from locscale.mapio import read_half_maps

        half = read_half_maps(smk.input.half1, smk.input.half2)
    out, info = sharpen.sharpen_map(emap, modelmap, resolution, window=win.voxels, mask=mask, mode=cfg["mode"],
                                    half_maps=half, progress=False, **options)
    write_map(smk.output.map, out, label=sharpen.sharpened_label(info))
    info.update(cycle=int(smk.wildcards.cycle), mask=mask_rule, window_rule=win.rule,
                reference=(f"hybrid: model + {hybrid_record['pseudo_atoms']} pseudo-atoms" if hybrid_record
                           else "model"))
    if hybrid_record:
        info["hybrid"] = hybrid_record
    write_json(smk.output.info, info)
    print(info)


run(main)
