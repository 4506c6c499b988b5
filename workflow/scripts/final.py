"""results/<dataset>/final/: the chosen cycle's files (locscale.cycle.files.final_outputs) and its selection."""

from _wf import named, read_json, run, write_json


def main(smk):
    import shutil

    from locscale.cycle.files import final_sources
    from locscale.outputs import atomic_output

    selection = read_json(smk.input.selection)
    c = int(selection["cycle"])
    for name, src in final_sources(named(smk.input), c).items():
        out = smk.output[name]
        with atomic_output(out, suffix="." + str(out).rsplit(".", 1)[-1]) as tmp:
            shutil.copyfile(src, tmp)
    write_json(smk.output.selection, {**selection, "files_from": f"cycle_{c:02d}"})
    print(f"final: cycle {c} ({selection['reason']})")


run(main)
