"""The cycle's file names (locscale.cycle.files): what the rules list as named inputs, the scripts read back."""

from locscale.cycle import files
from locscale.cycle.table import TIMED_STEPS


def test_summary_inputs_read_back_per_cycle():
    inputs = files.summary_inputs("ds", 3, crossval=True, completion_records=[1])
    assert inputs["inputs"] == "results/ds/cycle_00/inputs.json"
    cycle0 = files.summary_cycle_files(inputs, 0)
    assert cycle0 == {key: f"results/ds/cycle_00/{name}" for key, name in files.SUMMARY_EVERY_CYCLE.items()}
    cycle1 = files.summary_cycle_files(inputs, 1)
    assert cycle1["benchmarks"] == {s: f"results/ds/cycle_01/benchmarks/{s}.tsv" for s in TIMED_STEPS}
    assert cycle1["completion"] == "results/ds/cycle_01/completion_coot.json"
    assert cycle1["crossval"] == "results/ds/cycle_01/crossval.json"
    assert "completion" not in files.summary_cycle_files(inputs, 2)
    assert set(files.summary_cycle_files(inputs, 3)) == {*files.SUMMARY_EVERY_CYCLE, *files.SUMMARY_REFINED_CYCLES,
                                                         "benchmarks", "crossval"}
    # every named input belongs to cycle 0's records or to exactly one cycle
    per_cycle = [p for c in range(4) for v in files.summary_cycle_files(inputs, c).values()
                 for p in (v.values() if isinstance(v, dict) else [v])]
    assert sorted(per_cycle) == sorted(v for k, v in inputs.items() if k[-3] == "_" and k[-2:].isdigit())
    assert len(inputs) == 4 + len(per_cycle)
    assert "crossval" not in files.summary_cycle_files(files.summary_inputs("ds", 2, crossval=False), 2)


def test_final_sources_are_the_chosen_cycles_files_under_final_names():
    for hybrid in (False, True):
        outputs = files.final_outputs("ds", hybrid)
        inputs = files.final_inputs("ds", 3, hybrid)
        assert inputs["selection"] == "results/ds/summary_upto_03/selection.json"
        sources = files.final_sources(inputs, 2)
        assert set(sources) == set(outputs) - {"selection"}
        for name, src in sources.items():
            assert src.startswith("results/ds/cycle_02/")
            assert src.rsplit("/", 1)[1] == outputs[name].rsplit("/", 1)[1]  # same file name in final/
    assert "pseudo_atoms" not in files.final_outputs("ds", False)
    assert files.final_outputs("{ds}", True)["pseudo_atoms"] == "results/{ds}/final/pseudo_atoms.cif"
