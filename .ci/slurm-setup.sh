#!/usr/bin/env bash
# CI: install the Debian packages for the real single-node SLURM test (tests/test_slurm.py).
# Idempotent: does nothing when the binaries are already there. Needs root (or passwordless sudo) and apt.
# The daemons are NOT started here: tests/slurm_cluster.py writes a localhost slurm.conf in a temporary
# folder, starts munged, slurmctld and slurmd for the test and stops them afterwards.
set -euo pipefail

need=()
for bin in munged slurmctld slurmd sbatch squeue scancel; do
    command -v "$bin" >/dev/null 2>&1 || need+=("$bin")
done
if [ ${#need[@]} -eq 0 ]; then
    echo "slurm-setup: SLURM and munge already installed ($(slurmctld -V 2>/dev/null || true))"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "slurm-setup: not root and no passwordless sudo; cannot install SLURM (missing: ${need[*]})" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "slurm-setup: apt-get not found; install slurmctld, slurmd, slurm-client and munge by hand" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# slurm-wlm = slurmctld + slurmd + slurm-client; no recommends (no GUI, no docs)
$SUDO apt-get install -y -q --no-install-recommends slurm-wlm munge
echo "slurm-setup: installed $(slurmctld -V)"
