"""What a workflow run left for each dataset when it stopped: the steps that failed, read from their logs.

Every step of the workflow writes its own log (``results/<dataset>/.../logs/<step>.log``, downloads under
``resources/<dataset>/logs/``); a step's script starts its log with ``# rule <name>, wildcards {...}`` and ends it
with ``# done in <seconds> s`` (:mod:`locscale.cycle.job`). A log written during the run that does not end so
belongs to a step that failed (or was stopped); its ``ERROR`` line, when there is one, says why.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass
class FailedStep:
    log: Path
    rule: str
    cycle: str  # the cycle folder's number ("00" for the inputs), "" outside a cycle folder
    message: str  # the step's ERROR line, or the log's last line


def failed_steps(dataset: str, since: float, roots=("results", "resources")) -> list[FailedStep]:
    """The steps of `dataset` whose logs were written at or after `since` (a time stamp) and do not end with
    ``# done in``, oldest first."""
    found = []
    for root in roots:
        base = Path(root) / dataset
        if not base.is_dir():
            continue
        for log in base.rglob("logs/*.log"):
            try:
                if os.stat(log).st_mtime < since:
                    continue
                lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
            except OSError:
                continue
            if lines and lines[-1].startswith("# done in"):
                continue
            head = re.match(r"# rule (\S+),", lines[0]) if lines else None
            error = next((ln for ln in lines if ln.startswith("ERROR in rule")), None)
            if error is not None:
                error = error.split(": ", 1)[-1]
            elif lines:
                error = lines[-1].strip()
            cycle = re.search(r"cycle_(\d+)", str(log))
            found.append(FailedStep(log, head[1] if head else log.stem, cycle[1] if cycle else "",
                                    (error or "(empty log)")[:300]))
    return sorted(found, key=lambda f: os.stat(f.log).st_mtime if f.log.exists() else 0.0)
