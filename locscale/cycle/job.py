"""What every workflow script shares: the Snakemake job object, the log file and clean error messages.

Every script in ``workflow/scripts/`` is a thin wrapper over ``locscale`` library calls::

    from locscale.cycle.job import run

    def main(smk):
        ...  # library calls only

    run(main)

``locscale`` is installed where the scripts run (the rule's conda environment installs this checkout, envs/*.yaml;
without --sdm conda, the environment Snakemake runs in). ``run`` sends stdout/stderr and warnings to the rule's
log (warnings about the inputs also into every JSON record's ``warnings`` list), and turns a
:class:`locscale.errors.LocScaleInputError` into a short message (file, problem, fix) and exit status 1 instead of
a traceback.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback


def job():
    """The ``snakemake`` object Snakemake injects into the script's namespace."""
    import __main__

    return __main__.snakemake


def write_json(path, record: dict) -> None:
    from ..records import write_json as write

    write(path, record)


def read_json(path) -> dict:
    from ..records import read_json as read

    return read(path)


def resolution_of(inputs_json) -> float:
    """The dataset's resolution in Å, as decided in cycle 0 (given, or FSC 0.143 of the half maps)."""
    return float(read_json(inputs_json)["resolution"])


def write_tsv(frame, path) -> None:
    from ..outputs import write_tsv as write

    write(frame, path)


def named(files) -> dict:
    """{name: path} of a Snakemake job's named input or output files (what the library's step functions take)."""
    return {name: getattr(files, name) for name in files.keys()}


def _fail(smk, err) -> None:
    """End the job with `err` (file, problem, fix): in its log and, with its dataset and cycle, on the console."""
    try:
        print(f"\nERROR in rule {smk.rule}: {err}", flush=True)
    except OSError:  # the log's disk may be full
        pass
    sys.__stderr__.write(f"rule {smk.rule} ({dict(smk.wildcards)}): {err}\n")
    sys.exit(1)


def run(main) -> None:
    smk = job()
    log_path = smk.log[0] if len(smk.log) else None
    if log_path:  # emptied, then appended to: the tools this job runs append their own output to the same file
        open(log_path, "w").close()
    log = open(log_path, "a") if log_path else sys.stderr
    sys.stdout = sys.stderr = log
    logging.captureWarnings(True)
    logging.basicConfig(stream=log, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True)
    from ..errors import LocScaleInputError
    from ..records import collect_warnings
    from ..tools.process import usage_line

    t0, start = time.perf_counter(), time.time()
    print(f"# rule {smk.rule}, wildcards {dict(smk.wildcards)}, threads {smk.threads}", flush=True)
    try:
        # every warning about the inputs (locscale.checks) is printed to the log and listed in every JSON record
        with collect_warnings(lambda text: print(f"WARNING: {text}", flush=True)):
            main(smk)
    except LocScaleInputError as err:
        _fail(smk, err)
    except Exception as exc:
        from ..outputs import disk_full_error, is_disk_full

        if is_disk_full(exc):  # one line naming the file and the space, not a traceback
            _fail(smk, disk_full_error(getattr(exc, "filename", None) or smk.output[0]))
        try:
            traceback.print_exc(file=log)
            log.flush()
        except OSError:  # the log's disk may be full
            pass
        raise
    print(f"# done in {time.perf_counter() - t0:.1f} s", flush=True)
    print(usage_line(start), flush=True)  # CPU seconds and peak memory of the job's processes (benchmarks)
    log.flush()
