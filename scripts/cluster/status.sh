#!/usr/bin/env bash
# Prints whether each daemon of the single-node test cluster (scripts/cluster/up.sh) runs; exits 0 only
# when all of them do. Needs no root.
set -euo pipefail

# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

all_running=true
for name in "${DAEMONS[@]}"; do
    # mariadbd belongs to the cluster only when up.sh had to start a private one.
    if [[ $name == mariadbd && ! -e $(pid_file mariadbd) ]]; then continue; fi
    if pid=$(daemon_pid "$name"); then
        printf '%-10s running (pid %s)\n' "$name" "$pid"
    else
        printf '%-10s stopped\n' "$name"
        all_running=false
    fi
done
$all_running
