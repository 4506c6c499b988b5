"""Cycle step 5: converged? (locscale.cycle.convergence.check_convergence); the checkpoint the loop walks."""

from _wf import read_json, run


def main(smk):
    from locscale.cycle.convergence import check_convergence, write_decision

    decision = check_convergence(read_json(smk.input.current), read_json(smk.input.previous),
                                 smk.params.tolerances, cycle=int(smk.wildcards.cycle),
                                 min_cycles=int(smk.params.min_cycles), model_rebuilt=bool(smk.params.model_rebuilt))
    write_decision(decision, smk.output[0])
    print(f"cycle {decision.cycle}: {decision.status} ({decision.reason})")


run(main)
