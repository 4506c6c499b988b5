"""Phantoms with a known truth: simulated half maps from a real model (:mod:`.phantom`), scores against the
truth (:mod:`.truth`) and the model edits of the experiments' controls (:mod:`.edits`).
"""
