"""A throw-away single-node SLURM cluster on localhost, for tests (docs/cluster.md).

Everything lives in one temporary folder: its own munge key and socket, a ``slurm.conf`` with free ports, the
controller's state, the node's spool and the logs. The only thing outside it is a link ``/etc/slurm/slurm.conf``
to that ``slurm.conf`` while the cluster runs (job steps need it, see :data:`SYSTEM_CONF`); the cluster refuses to
start where that file already exists, so it neither disturbs nor depends on a SLURM configured on the machine,
and it removes a link left by a killed run. Client commands (``sbatch``, ``squeue``, ``sinfo``,
``scancel``) find the cluster through the ``SLURM_CONF`` variable of :attr:`SlurmCluster.env`.

Configuration: no accounting (``accounting_storage/none``), ``TaskPlugin=task/none``,
``ProctrackType=proctrack/linuxproc`` (no cgroups needed, works in containers), one node with ``cpus`` CPUs
in one default partition ``debug``. Memory is not enforced (no cgroups); the node announces at least 64 GB so
rules sized for real data sets can be scheduled on a small test machine (``SlurmdParameters=config_overrides``
makes slurmd trust the configured sizes). Finished jobs stay visible to ``squeue`` for an hour (``MinJobAge``), so
a test can check every job's final state (there is no accounting, hence no ``sacct``).

Needs root (slurmd must be able to start job steps) and the Debian packages of ``.ci/slurm-setup.sh``.
Only the daemons started here are stopped, by their process ids.

Usage::

    reason = unavailable_reason()          # None when a cluster can be started here
    with SlurmCluster(tmpdir) as cluster:   # raises SlurmStartError with the daemons' logs on failure
        subprocess.run([...], env=cluster.env)
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scancel", "scontrol", "srun")
PARTITION = "debug"
# The compiled-in default config path. Job steps need it: Snakemake's SLURM jobstep executor removes every
# SLURM_* variable (SLURM_CONF included) before it calls `srun` inside the job, so srun finds a cluster only
# through this file (or DNS SRV records). The cluster links it to its own slurm.conf while it runs.
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
_MARKER = "# single-node test cluster written by tests/slurm_cluster.py"


class SlurmStartError(RuntimeError):
    """The daemons could not be started; the message carries the tail of their logs."""


def unavailable_reason() -> str | None:
    """Why a local SLURM cannot be started here (missing binaries, not root), or None when it can."""
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        return (f"SLURM/munge binaries not found: {', '.join(missing)} "
                "(install with `sudo bash .ci/slurm-setup.sh`, i.e. apt-get install slurm-wlm munge)")
    if os.geteuid() != 0:
        return "a local SLURM needs root (slurmd launches job steps as the submitting user)"
    _remove_stale_system_conf()
    if SYSTEM_CONF.exists() or SYSTEM_CONF.is_symlink():
        return (f"{SYSTEM_CONF} exists: a SLURM is already configured on this machine, and job steps (srun) "
                "read that file, so a private test cluster cannot be used here")
    return None


def _pid_alive(pidfile: Path) -> bool:
    try:
        pid = int(pidfile.read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return False
    return True


def _remove_stale_system_conf() -> None:
    """Remove the link left by an earlier test cluster that was killed before it could stop (its folder is
    gone, or its slurmctld no longer runs). Links to anything else are left alone."""
    if not SYSTEM_CONF.is_symlink():
        return
    target = Path(os.readlink(SYSTEM_CONF))
    if target.name != "slurm.conf" or not target.parent.name.startswith("lsslurm-"):
        return
    if not target.exists():
        SYSTEM_CONF.unlink()
        return
    try:
        ours = target.read_text().splitlines()[:1] == [_MARKER]
    except OSError:
        return
    if ours and not _pid_alive(target.parent / "slurmctld.pid"):
        SYSTEM_CONF.unlink()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _total_memory_mb() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 4096


def _tail(path: Path, n: int = 25) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"({path.name}: no log)"
    return f"--- {path.name} (last {min(n, len(lines))} lines)\n" + "\n".join(lines[-n:])


class SlurmCluster:
    """munged + slurmctld + slurmd on localhost.

    Configured in `workdir`, by default a new ``/tmp/lsslurm-*`` folder that is deleted by :meth:`stop` unless
    `keep` (the munge socket path must stay under 108 characters, so keep it short; name a folder of your own
    ``lsslurm-*`` too, so a link left by a killed run is recognised and cleaned up).
    """

    def __init__(self, workdir: str | os.PathLike | None = None, cpus: int = 2, start_timeout: float = 60.0,
                 keep: bool = False):
        self._own_dir = workdir is None
        self.keep = keep
        if workdir is None:
            workdir = tempfile.mkdtemp(prefix="lsslurm-", dir="/tmp")
        self.dir = Path(workdir).resolve()
        self.cpus = int(cpus)
        self.start_timeout = float(start_timeout)
        self.host = socket.gethostname().split(".")[0]
        self.node = self.host
        self.conf = self.dir / "slurm.conf"
        self.procs: dict[str, subprocess.Popen] = {}
        self._linked = False
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        for var in ("SLURM_JOB_ID", "SLURM_JOBID", "SLURM_CLUSTER_NAME"):  # not inside someone else's job
            self.env.pop(var, None)

    # ------------------------------------------------------------------ set-up
    def _write_files(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)  # munged requires execute permission for all on the socket's folder
        for sub in ("state", "spool"):
            (self.dir / sub).mkdir(exist_ok=True)
        key = self.dir / "munge.key"
        if not key.exists():
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(os.urandom(128))
        d = self.dir
        memory = max(_total_memory_mb(), 64000)
        self.conf.write_text(f"""\
{_MARKER}
ClusterName=locscaletest
SlurmctldHost={self.host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={d}/munge.sock
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
PlugStackConfig={d}/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=3600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={memory} State=UNKNOWN
PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
""")
        (d / "plugstack.conf").write_text("")  # no SPANK plugins (do not pick up /etc/slurm's)

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.dir / f"{name}.out", "ab")  # closed with the process in stop()
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                            stdin=subprocess.DEVNULL, cwd=self.dir)
        self.procs[name]._log = log  # type: ignore[attr-defined]

    def _wait_for(self, what: str, check, deadline: float) -> None:
        while time.monotonic() < deadline:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise SlurmStartError(f"{name} exited with status {p.returncode} while waiting for {what}\n"
                                          + self.logs())
            if check():
                return
            time.sleep(0.3)
        raise SlurmStartError(f"timed out after {self.start_timeout:.0f} s waiting for {what}\n" + self.logs())

    def _run(self, *argv: str, timeout: float = 20) -> subprocess.CompletedProcess:
        return subprocess.run(list(argv), env=self.env, capture_output=True, text=True, timeout=timeout)

    def logs(self) -> str:
        names = ["munged.out", "slurmctld.out", "slurmctld.log", "slurmd.out", "slurmd.log"]
        return "\n".join(_tail(self.dir / n) for n in names if (self.dir / n).exists())

    def start(self) -> SlurmCluster:
        reason = unavailable_reason()
        if reason:
            self.stop()  # removes the folder made in __init__
            raise SlurmStartError(reason)
        self._write_files()
        deadline = time.monotonic() + self.start_timeout
        d = self.dir
        try:
            SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
            SYSTEM_CONF.symlink_to(self.conf)
            self._linked = True
            self._spawn("munged", ["munged", "-F", f"--socket={d}/munge.sock", f"--key-file={d}/munge.key",
                                   f"--log-file={d}/munged.log", f"--pid-file={d}/munged.pid",
                                   f"--seed-file={d}/munged.seed"])
            self._wait_for("the munge socket", (d / "munge.sock").exists, deadline)
            self._spawn("slurmctld", ["slurmctld", "-D", "-c", "-i", "-f", str(self.conf)])
            self._wait_for("slurmctld (scontrol ping)",
                           lambda: "UP" in self._run("scontrol", "ping").stdout, deadline)
            self._spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf), "-N", self.node])
            self._wait_for("the node to become idle (sinfo)", self._node_idle, deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _node_idle(self) -> bool:
        r = self._run("sinfo", "-h", "-N", "-o", "%T")
        return r.returncode == 0 and r.stdout.strip().rstrip("*") == "idle"

    # ------------------------------------------------------------------ queries
    def jobs(self) -> list[str]:
        """All job ids the controller still knows (running or recently finished)."""
        r = self._run("squeue", "-h", "--states=all", "-o", "%i")
        return r.stdout.split()

    def job_states(self) -> dict[str, str]:
        r = self._run("squeue", "-h", "--states=all", "-o", "%i|%T|%j")
        return {line.split("|")[0]: line.split("|")[1] for line in r.stdout.splitlines() if "|" in line}

    def queue(self) -> str:
        """squeue of every job the controller knows, with the reason a job waits (for failure messages: a job
        asking for more CPUs than the node has pends forever with reason PartitionConfig)."""
        r = self._run("squeue", "--states=all", "-o", "%.6i %.10T %.16r %.5C %.8m %.10M %j")
        return f"--- squeue\n{r.stdout}{r.stderr}"

    # ------------------------------------------------------------------ tear-down
    def stop(self) -> None:
        """Cancel remaining jobs, then stop slurmd, slurmctld and munged (only the processes started here)."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            try:
                self._run("scancel", "--full", "--partition", PARTITION, timeout=10)
                t_end = time.monotonic() + 10
                while time.monotonic() < t_end and any(
                        s in ("RUNNING", "COMPLETING", "PENDING") for s in self.job_states().values()):
                    time.sleep(0.3)
            except (subprocess.SubprocessError, OSError):
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            p = self.procs.get(name)
            if p is None:
                continue
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=5)
            p._log.close()  # type: ignore[attr-defined]
        self.procs.clear()
        if self._linked and SYSTEM_CONF.is_symlink() and Path(os.readlink(SYSTEM_CONF)) == self.conf:
            SYSTEM_CONF.unlink()
        self._linked = False
        if self._own_dir and not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stop()
