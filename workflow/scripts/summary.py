"""The per-cycle table, the final-cycle choice and the plots of cycles 0 ... last (locscale.cycle.summary)."""

from pathlib import Path

from _wf import named, run


def main(smk):
    from locscale.cycle.summary import write_summary

    schema = Path(__file__).resolve().parents[1] / "schemas" / "cycle_row.schema.yaml"
    write_summary(named(smk.input), named(smk.output), last=int(smk.params.last),
                  selection_settings=smk.params.selection, b_target=smk.params.config_summary["refine"]["b_target"],
                  schema_path=schema)


run(main)
