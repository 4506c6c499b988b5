"""Cycle 0: check the inputs and write the full map, the model in the map's frame, the kurtosis mask and inputs.json."""

from _wf import run, write_json


def main(smk):
    import numpy as np

    from locscale import metrics
    from locscale.checks import check_model_atoms
    from locscale.mapio import average_half_maps, read_half_maps, read_map, write_map
    from locscale.models import (
        check_model_in_map,
        envelope_mask,
        model_summary,
        read_model,
        set_uniform_b,
        shift_model,
        write_model,
    )
    from locscale.simulate import check_model_fits_map

    ds = smk.params.dataset
    info = {"dataset": smk.wildcards.ds}
    if "half1" in smk.input.keys():
        h1, h2 = read_half_maps(smk.input.half1, smk.input.half2)
        emap = average_half_maps(h1, h2)
        info["half_maps"] = [smk.input.half1, smk.input.half2]
        curve = metrics.fsc(h1.data, h2.data, h1.apix)
        info["half_map_fsc0143_A"] = metrics.resolution_at(curve, 0.143)
    else:
        emap = read_map(smk.input.map)
        info["map"] = smk.input.map
    emap.require_isotropic("the refinement cycles (LocScale)")
    if ds.get("resolution") is not None:
        resolution, source = float(ds["resolution"]), "config"
    else:
        resolution, source = info["half_map_fsc0143_A"], "half-map FSC 0.143"
    info.update(resolution=resolution, resolution_source=source, shape=list(emap.shape),
                voxel_size=emap.voxel_size.tolist(), origin=emap.origin.tolist(), axis_order=list(emap.axis_order),
                origin_convention=emap.origin_convention)

    # one hydrogen policy for every cycle: refinement runs without hydrogens (servalcat --hydrogen no), so cycle 0
    # is checked and validated without them too (with them the input's CC, Q-score and overlaps would not compare)
    structure = read_model(smk.input.model)
    info["hydrogens"] = {"removed": model_summary(structure)["hydrogens"],
                         "policy": "none in any cycle: removed from the input model, and refinement runs "
                                   "without them (servalcat --hydrogen no)"}
    structure.remove_hydrogens()
    check_model_atoms(structure, smk.input.model)
    if ds.get("model_shift") is not None:
        structure = shift_model(structure, ds["model_shift"])
        info["model_shift_A"] = list(ds["model_shift"])
    if ds.get("initial_b") is not None:
        structure = set_uniform_b(structure, float(ds["initial_b"]))
        info["initial_b"] = float(ds["initial_b"])
    info["model"] = smk.input.model
    info["model_inside_fraction"] = check_model_in_map(structure, emap, min_inside=ds["min_model_inside"])
    info["model_fit_cc"] = check_model_fits_map(structure, emap, resolution)
    info["model_summary"] = model_summary(structure)
    if "mask" in smk.input.keys():
        mask = read_map(smk.input.mask)
        emap.require_same_grid(mask, "the map and the mask")
        info["mask"] = smk.input.mask
        info["mask_voxels"] = int(np.count_nonzero(mask.data >= 0.5))

    radius = metrics.envelope_radius(resolution)
    kmask = envelope_mask(structure, emap, radius)
    info["kurtosis_mask_radius_A"] = radius
    info["kurtosis_mask_voxels"] = int(np.count_nonzero(kmask))

    write_map(smk.output.map, emap, label="LocScale cycles: original map")
    write_model(structure, smk.output.model)
    write_map(smk.output.kurtosis_mask, emap, data=kmask.astype(np.float32),
              label=f"kurtosis mask: model envelope {radius:.1f} A")
    write_json(smk.output.info, info)
    print(info)


run(main)
