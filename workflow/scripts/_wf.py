"""The scripts' shared start-up lives in the library (:mod:`locscale.cycle.job`); this name is kept for them."""

from locscale.cycle.job import job, named, read_json, resolution_of, run, write_json, write_tsv  # noqa: F401
