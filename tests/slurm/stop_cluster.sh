#!/usr/bin/env bash
# Stop the cluster that tests/slurm/start_cluster.sh started in STATE_DIR.
#
#   tests/slurm/stop_cluster.sh STATE_DIR
#
# Cancels the jobs still known to that cluster's slurmctld and gives them 20 s to end; sends
# SIGTERM to exactly the process ids recorded in STATE_DIR/pids (newest first), waits up to
# 10 s, and sends SIGKILL to any that remain. A recorded id whose process is gone, or now runs
# another program, is skipped. Last, job steps that outlived slurmd (they live in slurmd's
# private mount namespace, recorded in STATE_DIR/slurmd.mntns, and nothing else does) get
# SIGKILL. Safe to call twice.
set -uo pipefail
export PATH="$PATH:/usr/sbin:/sbin" # the daemons live in sbin; not every PATH has it

STATE_DIR=$(realpath -m "${1:?usage: stop_cluster.sh STATE_DIR}")
PIDS="$STATE_DIR/pids"
[[ -f $PIDS ]] || exit 0

# True when pid $2 is alive and still runs program $1.
runs() {
    [[ -r /proc/$2/comm && $(cat "/proc/$2/comm" 2>/dev/null) == "$1" ]]
}

if grep -q '^slurmctld ' "$PIDS" && [[ -f $STATE_DIR/etc/slurm.conf ]]; then
    export SLURM_CONF="$STATE_DIR/etc/slurm.conf"
    timeout 10 scancel --quiet --user="$(id -un)"
    for _ in $(seq 40); do
        [[ -z $(timeout 5 squeue --noheader 2>/dev/null) ]] && break
        sleep 0.5
    done
fi

mapfile -t entries < <(tac "$PIDS")
for entry in "${entries[@]}"; do
    read -r name pid <<<"$entry"
    runs "$name" "$pid" && kill -TERM "$pid"
done
for entry in "${entries[@]}"; do
    read -r name pid <<<"$entry"
    for _ in $(seq 100); do
        runs "$name" "$pid" || break
        sleep 0.1
    done
    if runs "$name" "$pid"; then
        echo "stop_cluster.sh: $name ($pid) ignored SIGTERM; sending SIGKILL" >&2
        kill -KILL "$pid"
    fi
done
: >"$PIDS"

ns=$(cat "$STATE_DIR/slurmd.mntns" 2>/dev/null)
if [[ -n $ns && $ns != "$(readlink /proc/self/ns/mnt)" ]]; then
    for proc in /proc/[0-9]*; do
        if [[ $(readlink "$proc/ns/mnt" 2>/dev/null) == "$ns" ]]; then
            echo "stop_cluster.sh: ending $(cat "$proc/comm" 2>/dev/null) (${proc#/proc/}), left by a job" >&2
            kill -KILL "${proc#/proc/}" 2>/dev/null
        fi
    done
fi
exit 0
