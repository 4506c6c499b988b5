"""Cycle step 3: LocScale of the ORIGINAL map against the cycle's model map (locscale.sharpen.sharpen_map)."""

from _wf import resolution_of, run, write_json


def main(smk):
    from locscale import sharpen
    from locscale.mapio import read_map, write_map
    from locscale.models import read_model

    cfg = smk.params.sharpen
    emap, modelmap = read_map(smk.input.map), read_map(smk.input.modelmap)
    resolution = resolution_of(smk.input.info)
    win = sharpen.choose_window(emap.apix, resolution, cfg.get("window"), cfg.get("window_angstrom"), cfg["mode"])
    mask, mask_rule = sharpen.choose_mask(
        emap, mask_path=smk.input.get("mask"), structure=read_model(smk.input.model),
        mask_radius=cfg.get("mask_radius"), window_voxels=win.voxels)
    options = {"workers": smk.threads, **({"stride": cfg["stride"]} if cfg.get("stride") else {})}
    half = None
    if "half1" in smk.input.keys():  # the tapered mode's noise weights come from the half maps
        from locscale.mapio import read_half_maps

        half = read_half_maps(smk.input.half1, smk.input.half2)
    out, info = sharpen.sharpen_map(emap, modelmap, resolution, window=win.voxels, mask=mask, mode=cfg["mode"],
                                    half_maps=half, progress=False, **options)
    write_map(smk.output.map, out, label=sharpen.sharpened_label(info))
    info.update(cycle=int(smk.wildcards.cycle), mask=mask_rule, window_rule=win.rule)
    write_json(smk.output.info, info)
    print(info)


run(main)
