#!/usr/bin/env bash
# Start a single-node Slurm cluster on this machine (Debian 12, Slurm 22.05), for CI and for
# the integration tests.  Run as root:  sudo .ci/slurm-up.sh
#
# Idempotent: if `sinfo` already shows a usable node (idle/mix/alloc) nothing is touched.
# Otherwise /etc/slurm/slurm.conf is (re)written for this host; if it had different content,
# the running slurmctld/slurmd are stopped and started again (scontrol reconfigure does not
# pick up node changes).  Exits non-zero, with the daemon log tails, if the node never
# becomes idle.
#
# Needs the Debian packages slurmctld slurmd slurm-client munge (.ci/run installs them).
set -euo pipefail

CONF=/etc/slurm/slurm.conf
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
CTLD_LOG=/var/log/slurm/slurmctld.log
SLURMD_LOG=/var/log/slurm/slurmd.log
WAIT_S=${SLURM_UP_WAIT_S:-30}

log() { printf '[slurm-up %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { printf '[slurm-up %s] ERROR: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; exit 1; }

# True when sinfo answers with at least one usable node.  A trailing flag such as `*`
# (not responding) or `~` (powered off) makes the state not match, on purpose.
cluster_ready() {
    sinfo -h -o %t 2>/dev/null | grep -Eqx 'idle|mix|mixed|alloc|allocated'
}

# pid from a pid file, if that process is alive
live_pid() {
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && printf '%s\n' "$pid"
}

stop_daemon() {  # name pidfile
    local pid
    pid=$(live_pid "$2") || return 0
    log "stopping $1 (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    log "$1 (pid $pid) did not exit after 10 s; sending SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
}

show_logs() {
    local f
    for f in "$CTLD_LOG" "$SLURMD_LOG"; do
        printf '\n----- tail -n 40 %s -----\n' "$f" >&2
        tail -n 40 "$f" >&2 2>/dev/null || echo "(no $f)" >&2
    done
}

# With a slurm.conf written by this script, also require both daemons to be alive: slurmctld
# keeps reporting a node idle for SlurmdTimeout (300 s) after its slurmd died.
ours() { [[ -f $CONF ]] && head -n1 "$CONF" | grep -q '^# Written by \.ci/slurm-up\.sh'; }
if command -v sinfo >/dev/null 2>&1 && cluster_ready &&
    { ! ours || { live_pid "$CTLD_PID" >/dev/null && live_pid "$SLURMD_PID" >/dev/null; }; }; then
    log "Slurm already up; nothing to do"
    sinfo
    exit 0
fi

[[ $(id -u) -eq 0 ]] || die "must run as root (sudo $0)"
for bin in sinfo scontrol /usr/sbin/slurmctld /usr/sbin/slurmd /usr/sbin/munged munge unmunge; do
    command -v "$bin" >/dev/null 2>&1 ||
        die "$bin not found; install: apt-get install -y slurmctld slurmd slurm-client munge"
done

# --- munge -------------------------------------------------------------------------------
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile=/etc/munge/munge.key
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
fi
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "munged already running"
else
    log "starting munged"
    su -s /bin/sh munge -c /usr/sbin/munged
    for _ in $(seq 20); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.25
    done
    munge -n | unmunge >/dev/null || die "munge does not work (see /var/log/munge/munged.log)"
fi

# --- slurm.conf --------------------------------------------------------------------------
host=$(hostname)
cpus=$(nproc)
mem=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 - 2048 ))
(( mem >= 512 )) || mem=512

new_conf=$(mktemp)
trap 'rm -f "$new_conf"' EXIT
cat > "$new_conf" <<CONF
# Written by .ci/slurm-up.sh: single-node test cluster.
ClusterName=local
SlurmctldHost=${host}
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=${CTLD_LOG}
SlurmdLogFile=${SLURMD_LOG}
SlurmctldPidFile=${CTLD_PID}
SlurmdPidFile=${SLURMD_PID}
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=${host} CPUs=${cpus} RealMemory=${mem} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
CONF

ctld_flags=()
if [[ -f $CONF ]] && cmp -s "$new_conf" "$CONF"; then
    log "$CONF is up to date"
else
    if [[ -f $CONF ]]; then
        log "$CONF differs; rewriting it and restarting the daemons"
        cp -p "$CONF" "$CONF.bak"
        stop_daemon slurmd "$SLURMD_PID"
        stop_daemon slurmctld "$CTLD_PID"
    else
        log "writing $CONF"
    fi
    mkdir -p "$(dirname "$CONF")"
    install -m 0644 "$new_conf" "$CONF"
    ctld_flags=(-c)  # the old saved state may describe another node: start clean
fi
cat "$CONF"

# --- daemons -----------------------------------------------------------------------------
mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
if pid=$(live_pid "$CTLD_PID"); then
    log "slurmctld already running (pid $pid)"
else
    log "starting slurmctld ${ctld_flags[*]}"
    /usr/sbin/slurmctld "${ctld_flags[@]}" || { show_logs; die "slurmctld failed to start"; }
fi
if pid=$(live_pid "$SLURMD_PID"); then
    log "slurmd already running (pid $pid)"
else
    log "starting slurmd"
    /usr/sbin/slurmd || { show_logs; die "slurmd failed to start"; }
fi

log "waiting up to ${WAIT_S}s for the node to become idle"
resumed=0
for i in $(seq "$WAIT_S"); do
    if cluster_ready; then
        log "node ready after ${i}s"
        sinfo
        exit 0
    fi
    # A node left down/drained by earlier saved state: resume it once.
    if (( ! resumed && i >= 5 )) && sinfo -h -o %t 2>/dev/null | grep -Eq '^(down|drain|drng|drained)'; then
        log "node is $(sinfo -h -o %t | head -n1); trying scontrol update state=resume"
        scontrol update nodename="$host" state=resume || true
        resumed=1
    fi
    sleep 1
done

printf '\n' >&2
sinfo >&2 || true
scontrol show node "$host" >&2 || true
show_logs
die "the Slurm node did not become idle within ${WAIT_S}s"
