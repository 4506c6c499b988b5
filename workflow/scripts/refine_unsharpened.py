"""Cycle 0: the data's own blur. The input model's B-factors (coordinates fixed) are refined against the
unsharpened full map with the configured engine; the 1st percentile of the refined B is the blur the global target
removes, and their mean less that blur the B level every cycle's reference keeps
(locscale.global_sharpen.data_blur)."""

from pathlib import Path

from _wf import resolution_of, run, write_json


def main(smk):
    import gemmi

    from locscale.engines import make_engine
    from locscale.global_sharpen import data_blur
    from locscale.models import b_factors, write_model

    engine = make_engine(smk.params.refine)
    result = engine.run(smk.input.model, resolution_of(smk.input.info), Path(smk.params.workdir),
                        target_map=smk.input.map, threads=smk.threads, log=smk.log[0], step="adp")
    refined = gemmi.read_structure(str(result.model))  # B at the level the refinement asks for: may be ≤ 0
    write_model(refined, smk.output.model)
    record = {"what": "B-factors refined against the unsharpened full map (coordinates fixed); their 1st "
                      "percentile is the data's own blur",
              **data_blur(b_factors(refined)), **result.record()}
    write_json(smk.output.info, record)
    print(record)


run(main)
