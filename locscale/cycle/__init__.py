"""The refinement cycle's own logic, shared by the Snakemake rules and the tests: the config check
(:mod:`.config`), the cycle's file names (:mod:`.files`), cycle 0's checked inputs (:mod:`.inputs`), the refine
step (:mod:`.refinement`) and the map steps (:mod:`.steps`), the overall B level of a cycle's refined model
(:mod:`.b_level`), the per-cycle metric registry (:mod:`.registry`) and table row (:mod:`.table`), when to stop
(:mod:`.convergence`), which cycle a run hands out (:mod:`.selection`), the summary of cycles 0 ... last
(:mod:`.summary`) and the plots and ChimeraX scripts (:mod:`.report`).
"""
