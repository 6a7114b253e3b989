#!/usr/bin/env bash
# Bring up a one-node SLURM cluster on localhost whose whole state lives in STATE_DIR.
#
#   tests/slurm/start_cluster.sh STATE_DIR [TIMEOUT_S]
#
# Needs root and Debian's slurm-wlm + munge packages. Writes STATE_DIR/etc/slurm.conf (point
# SLURM_CONF at it to use the cluster), a fresh munge key, spool/state folders and logs;
# starts munged, slurmctld and slurmd in the background and records their process ids in
# STATE_DIR/pids (one "name pid" per line) for tests/slurm/stop_cluster.sh. Returns once
# `sinfo` shows the node idle, or fails (exit 1, daemons stopped) after TIMEOUT_S seconds.
#
# No job accounting daemon: the Snakemake SLURM executor is run with
# `--slurm-status-command squeue`, which reads job states from slurmctld. slurmctld keeps a
# finished job for MinJobAge seconds, set high enough here that the executor sees every
# job's final state (see docs/slurm.md).
#
# Nothing is written under /etc: every daemon gets its config, key, socket and pid file
# paths on the command line or in STATE_DIR/etc/slurm.conf (slurmd and its jobs see that
# folder as /etc/slurm through a bind mount private to their mount namespace). No cgroups:
# processes are tracked via /proc (proctrack/linuxproc), no task plugin binds them
# (task/none).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin" # the daemons live in sbin; not every PATH has it

STATE_DIR=${1:?usage: start_cluster.sh STATE_DIR [TIMEOUT_S]}
TIMEOUT_S=${2:-60}
STATE_DIR=$(realpath -m "$STATE_DIR")
HERE=$(dirname "$(realpath "$0")")

if [[ $(id -u) -ne 0 ]]; then
    echo "start_cluster.sh: needs root (slurmd runs jobs as their submitting user)" >&2
    exit 2
fi
for tool in munged mungekey slurmctld slurmd sinfo unshare; do
    command -v "$tool" >/dev/null || {
        echo "start_cluster.sh: '$tool' not found; apt-get install slurm-wlm munge" >&2
        exit 2
    }
done

if ! unshare --mount --propagation private true 2>/dev/null; then
    echo "start_cluster.sh: 'unshare --mount' is not permitted here (slurmd needs a private" \
        "mount namespace; see the comment at its start below)" >&2
    exit 2
fi

# munged refuses group/world-writable folders for its key, socket and logs.
mkdir -p "$STATE_DIR"
chmod 0700 "$STATE_DIR"
mkdir -p "$STATE_DIR"/{etc,munge,ctld,spool,log}
PIDS="$STATE_DIR/pids"
: >"$PIDS"

# Any failure after a daemon started stops the ones already recorded.
trap 'echo "start_cluster.sh: failed; stopping what was started" >&2; "$HERE/stop_cluster.sh" "$STATE_DIR"' ERR

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- munge: its own key and socket, so a system munged (if any) is left alone -------------
MUNGE_KEY="$STATE_DIR/munge/munge.key"
MUNGE_SOCKET="$STATE_DIR/munge/munge.socket"
mungekey --create --keyfile="$MUNGE_KEY" --force
chmod 0400 "$MUNGE_KEY"
munged --foreground --force \
    --key-file="$MUNGE_KEY" --socket="$MUNGE_SOCKET" \
    --pid-file="$STATE_DIR/munge/munged.pid" --seed-file="$STATE_DIR/munge/munged.seed" \
    --log-file="$STATE_DIR/log/munged.log" >>"$STATE_DIR/log/munged.out" 2>&1 </dev/null &
echo "munged $!" >>"$PIDS"

# --- slurm.conf: the node exactly as slurmd detects it (CPUs, sockets, memory) ------------
NODE_LINE=$(slurmd -C | head -n 1)
NODE_NAME=$(sed -n 's/^NodeName=\([^ ]*\).*/\1/p' <<<"$NODE_LINE")
CTLD_PORT=$(free_port)
SLURMD_PORT=$(free_port)
ETC="$STATE_DIR/etc"
: >"$ETC/plugstack.conf"
cat >"$ETC/slurm.conf" <<EOF
# Written by tests/slurm/start_cluster.sh: a throwaway one-node cluster on localhost.
ClusterName=sltrepro-test
SlurmctldHost=$NODE_NAME(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldPidFile=$STATE_DIR/ctld/slurmctld.pid
SlurmdPidFile=$STATE_DIR/spool/slurmd.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$ETC/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SchedulerType=sched/backfill
# Job accounting: none (the executor polls squeue). Finished jobs stay visible to squeue
# for MinJobAge seconds, above the executor's 3 x init_seconds_before_status_checks.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=3600
# Four stand-in GPUs (gres.conf): the profile's GPU requests are scheduled and can be
# checked on a machine that has none (the jobs themselves then run on the CPU).
GresTypes=gpu
$NODE_LINE NodeAddr=127.0.0.1 Gres=gpu:4 State=UNKNOWN
PartitionName=debug Nodes=$NODE_NAME Default=YES MaxTime=INFINITE State=UP
EOF
# slurmd counts a GPU per character device in gres.conf: four device nodes with /dev/null's
# numbers (1,3) stand in for /dev/nvidia0-3. Nothing opens them (task/none, no cgroups).
mkdir -p "$STATE_DIR/fake_gpus"
for i in 0 1 2 3; do mknod "$STATE_DIR/fake_gpus/gpu$i" c 1 3; done
echo "AutoDetect=off
Name=gpu File=$STATE_DIR/fake_gpus/gpu[0-3]" >"$ETC/gres.conf"
export SLURM_CONF="$ETC/slurm.conf"

# --- daemons run in the foreground (-D) as background jobs, so $! is the daemon itself; their
# output goes to files so that a caller reading this script's output is not held open. ---
slurmctld -D -i -f "$SLURM_CONF" >>"$STATE_DIR/log/slurmctld.out" 2>&1 </dev/null &
echo "slurmctld $!" >>"$PIDS"
# Job steps inherit slurmd's view of the file system. Snakemake's slurm-jobstep executor
# clears SLURM_* variables (SLURM_CONF too) before it calls srun inside a job, so srun reads
# the default /etc/slurm/slurm.conf: slurmd runs in its own mount namespace where /etc/slurm
# is STATE_DIR/etc (a private bind mount, invisible outside that namespace). unshare and
# sh exec, so $! is slurmd's pid.
unshare --mount --propagation private \
    sh -c 'mount --bind "$1" /etc/slurm && shift && exec "$@"' sh "$ETC" \
    slurmd -D -f "$SLURM_CONF" -N "$NODE_NAME" >>"$STATE_DIR/log/slurmd.out" 2>&1 </dev/null &
echo "slurmd $!" >>"$PIDS"

deadline=$((SECONDS + TIMEOUT_S))
until [[ $(sinfo --noheader --nodes="$NODE_NAME" --format=%t 2>/dev/null) == idle ]]; do
    if ((SECONDS > deadline)); then
        echo "start_cluster.sh: node $NODE_NAME not idle after ${TIMEOUT_S}s; logs:" >&2
        tail -n 20 "$STATE_DIR"/log/*.log >&2 || true
        false
    fi
    sleep 0.5
done
# slurmd's mount namespace holds slurmd and nothing else but what it starts (job steps):
# stop_cluster.sh ends what is left in it, so no job outlives the cluster.
readlink "/proc/$(awk '$1 == "slurmd" {print $2}' "$PIDS")/ns/mnt" >"$STATE_DIR/slurmd.mntns"
echo "start_cluster.sh: node $NODE_NAME idle; export SLURM_CONF=$SLURM_CONF"
