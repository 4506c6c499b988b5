"""Validation of a cycle: the map metrics record against the original map (:mod:`.map_metrics`), the model
validation by external tools each in its own process (:mod:`.model`, :mod:`.coot_tool`, :mod:`.cctbx_tool`,
:mod:`.tool`), and cross-validation by the shake protocol (:mod:`.crossval`).
"""
