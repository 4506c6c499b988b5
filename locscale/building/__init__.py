"""Automated model completion between cycles: plan, seeded traces, score, trim and merge
(:mod:`.completion`), with coot's building steps run as their own processes (:mod:`.coot_tool`); or the user's own
model-building command (:mod:`.command`).
"""
