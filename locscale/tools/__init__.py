"""External programs the cycle runs (refinement engines, model validation, model building): how a tool
process is run (:mod:`.process`) and the CCP4 monomer library that restrains them (:mod:`.restraints`).
"""
