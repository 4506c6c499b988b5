"""Experiments: build a SIMULATED phantom from a real model (locscale.phantoms.phantom)."""

from _wf import run


def main(smk):
    from pathlib import Path

    from locscale.phantoms.phantom import write_configured_phantom

    ph = write_configured_phantom(smk.input.model, smk.params.phantom, Path(smk.output.json).parent,
                                  expected={k: getattr(smk.output, k) for k in smk.output.keys()})
    print(ph.info["noise"])


run(main)
