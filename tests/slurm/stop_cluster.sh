#!/usr/bin/env bash
# Stop the cluster that tests/slurm/start_cluster.sh started in STATE_DIR.
#
#   tests/slurm/stop_cluster.sh STATE_DIR
#
# Cancels the jobs still known to that cluster's slurmctld, then sends SIGTERM to exactly
# the process ids recorded in STATE_DIR/pids (newest first), waits up to 10 s, and sends
# SIGKILL to any that remain. A recorded id whose process is gone, or now runs another
# program, is skipped. Safe to call twice.
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
    SLURM_CONF="$STATE_DIR/etc/slurm.conf" timeout 10 scancel --quiet --user="$(id -un)" || true
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
