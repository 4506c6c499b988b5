"""results/<dataset>/final/: copy the chosen cycle's LocScale map, model, model map and metrics
(locscale.cycle.selection), and with the hybrid reference its pseudo-atoms and unexplained-density mask."""

from _wf import read_json, run, write_json


def main(smk):
    import shutil

    from locscale.outputs import atomic_output

    selection = read_json(smk.input.selection)
    c = int(selection["cycle"])
    copies = [("locscale", smk.output.map), ("model", smk.output.model), ("modelmap", smk.output.modelmap),
              ("metrics", smk.output.metrics)]
    copies += [(name, smk.output[name]) for name in ("pseudo_atoms", "unexplained_mask") if name in smk.output.keys()]
    for name, out in copies:
        src = smk.input[f"{name}_{c:02d}"]
        with atomic_output(out, suffix="." + str(out).rsplit(".", 1)[-1]) as tmp:
            shutil.copyfile(src, tmp)
    write_json(smk.output.selection, {**selection, "files_from": f"cycle_{c:02d}"})
    print(f"final: cycle {c} ({selection['reason']})")


run(main)
