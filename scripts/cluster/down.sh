#!/usr/bin/env bash
# Stops the single-node test cluster that scripts/cluster/up.sh started: cancels the jobs still queued or
# running on it, then stops exactly the daemons named by the pid files in var/cluster/run/, in the reverse
# order of their start. Packages, configs, keys, Slurm state and the accounting database stay, so up.sh
# brings the same cluster back (job ids continue, sacct keeps the history).
set -euo pipefail

# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

((EUID == 0)) || die "run as root: the cluster's daemons run as root (try: sudo $0)"
[[ -d $CLUSTER_DIR ]] || exit 0
hold_cluster_lock

# Jobs left running would keep their processes (slurmstepd and the job's own) alive after slurmd stops.
if daemon_pid slurmctld >/dev/null && daemon_pid slurmd >/dev/null; then
    mapfile -t job_ids < <(squeue -h -o %F 2>/dev/null | sort -u)
    if ((${#job_ids[@]})); then
        log "cancelling jobs ${job_ids[*]}"
        scancel "${job_ids[@]}" || true
        deadline=$((SECONDS + 20))
        while [[ -n $(squeue -h -t PENDING,RUNNING,SUSPENDED,COMPLETING -o %A 2>/dev/null) ]]; do
            ((SECONDS < deadline)) || { log "jobs still ending after 20s, stopping anyway"; break; }
            sleep 0.2
        done
    fi
fi

for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    stop_daemon "${DAEMONS[i]}" 30
done
log "cluster stopped"
