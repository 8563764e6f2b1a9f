#!/usr/bin/env bash
# Start a local Slurm test cluster on this machine (Debian 12, Slurm 22.05), for CI and for the
# integration tests.  Run as root:  sudo .ci/slurm-up.sh
#
# The cluster (fake GPUs and a second node, so that GPU and 2-node scripts can be checked):
#   <host>   this machine, runs slurmd; 8 fake H100 GPUs (gres.conf: File=/dev/tty[0-7]).
#   <host>2  NodeAddr=127.0.0.2, the same shape, and no slurmd: it exists so that `sbatch
#            --test-only` can check 2-node GPU scripts.  No job ever runs there.
#   partition debug (Default): <host> only.  Jobs that really run go here.
#   partition gpu: both nodes.  For `sbatch --test-only` and `python -m planner.inventory
#            --from-slurm --partition gpu`; the shipped Slurm inventories name this partition.
# <host>2 stays idle although no slurmd of its own runs (verified here over 8 minutes, longer than
# SlurmdTimeout's 300 s): 127.0.0.2 is on the loopback, so slurmctld's pings to it reach the
# slurmd of <host>, which listens on 0.0.0.0:6818.  If that slurmd dies, both nodes go down.
#
# Idempotent: when slurm.conf and gres.conf already hold what this script writes, both daemons
# run and sinfo shows a usable node, nothing is touched.  A cluster configured by someone else
# (no "Written by" line in slurm.conf) that already works is left alone.  Otherwise the files are
# (re)written; if they had different content, the running slurmctld/slurmd are stopped and
# started again (scontrol reconfigure does not pick up node changes).  Exits non-zero, with the
# daemon log tails, if the nodes never become idle.
#
# Needs the Debian packages slurmctld slurmd slurm-client munge (.ci/run installs them).
set -euo pipefail

CONF=/etc/slurm/slurm.conf
GRES_CONF=/etc/slurm/gres.conf
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
CTLD_LOG=/var/log/slurm/slurmctld.log
SLURMD_LOG=/var/log/slurm/slurmd.log
WAIT_S=${SLURM_UP_WAIT_S:-30}
MARK='# Written by .ci/slurm-up.sh'

log() { printf '[slurm-up %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { printf '[slurm-up %s] ERROR: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; exit 1; }

# The node's state, e.g. idle, mix, down*, unk; empty when sinfo does not answer.  A trailing
# flag such as `*` (not responding) or `~` (powered off) makes it not usable, on purpose.
node_state() {
    sinfo -h -N -n "$1" -o %t 2>/dev/null | head -n1
}
usable() { [[ $1 =~ ^(idle|mix|mixed|alloc|allocated)$ ]]; }

# True when both nodes are usable.
cluster_ready() {
    usable "$(node_state "$host")" && usable "$(node_state "$host2")"
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

# --- the configuration this script wants --------------------------------------------------
host=$(hostname)
host2=${host}2
cpus=$(nproc)
mem=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 - 2048 ))
(( mem >= 512 )) || mem=512

new_conf=$(mktemp)
new_gres=$(mktemp)
trap 'rm -f "$new_conf" "$new_gres"' EXIT
cat > "$new_conf" <<CONF
${MARK}: test cluster, ${host} (runs jobs) and ${host2} (no slurmd: --test-only only).
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
GresTypes=gpu
NodeName=${host} CPUs=${cpus} RealMemory=${mem} Gres=gpu:h100:8 State=UNKNOWN
NodeName=${host2} NodeAddr=127.0.0.2 CPUs=${cpus} RealMemory=${mem} Gres=gpu:h100:8 State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=${host},${host2} Default=NO MaxTime=INFINITE State=UP
CONF
cat > "$new_gres" <<CONF
${MARK}: fake GPUs, backed by tty devices (slurmd needs device files to count them).
NodeName=${host},${host2} Name=gpu Type=h100 File=/dev/tty[0-7]
CONF

ours() { [[ -f $CONF ]] && head -n1 "$CONF" | grep -qF "$MARK"; }
current() { [[ -f $CONF && -f $GRES_CONF ]] && cmp -s "$new_conf" "$CONF" && cmp -s "$new_gres" "$GRES_CONF"; }

# With a slurm.conf written by this script, also require both daemons to be alive: slurmctld
# keeps reporting a node idle for SlurmdTimeout (300 s) after its slurmd died.
if command -v sinfo >/dev/null 2>&1; then
    if ours && current && live_pid "$CTLD_PID" >/dev/null && live_pid "$SLURMD_PID" >/dev/null &&
        cluster_ready; then
        log "Slurm already up; nothing to do"
        sinfo -N -o '%N %P %t %c %m %G'
        exit 0
    fi
    if ! ours && sinfo -h -o %t 2>/dev/null | grep -Eqx 'idle|mix|mixed|alloc|allocated'; then
        log "a Slurm cluster not configured by this script is up; leaving it alone"
        sinfo
        exit 0
    fi
fi

[[ $(id -u) -eq 0 ]] || die "must run as root (sudo $0)"
for bin in sinfo scontrol /usr/sbin/slurmctld /usr/sbin/slurmd /usr/sbin/munged munge unmunge; do
    command -v "$bin" >/dev/null 2>&1 ||
        die "$bin not found; install: apt-get install -y slurmctld slurmd slurm-client munge"
done
for dev in /dev/tty{0..7}; do
    [[ -e $dev ]] || die "$dev not found: gres.conf backs the fake GPUs with /dev/tty[0-7]"
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

# --- slurm.conf and gres.conf ---------------------------------------------------------------
ctld_flags=()
if current; then
    log "$CONF and $GRES_CONF are up to date"
else
    if [[ -f $CONF ]]; then
        log "$CONF or $GRES_CONF differs; rewriting them and restarting the daemons"
        cp -p "$CONF" "$CONF.bak"
        [[ ! -f $GRES_CONF ]] || cp -p "$GRES_CONF" "$GRES_CONF.bak"
        stop_daemon slurmd "$SLURMD_PID"
        stop_daemon slurmctld "$CTLD_PID"
    else
        log "writing $CONF and $GRES_CONF"
    fi
    mkdir -p "$(dirname "$CONF")"
    install -m 0644 "$new_conf" "$CONF"
    install -m 0644 "$new_gres" "$GRES_CONF"
    ctld_flags=(-c)  # the old saved state may describe other nodes: start clean
fi
cat "$CONF" "$GRES_CONF"

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

log "waiting up to ${WAIT_S}s for $host and $host2 to become idle"
for i in $(seq "$WAIT_S"); do
    if cluster_ready; then
        log "nodes ready after ${i}s"
        sinfo -N -o '%N %P %t %c %m %G'
        exit 0
    fi
    # A node left down/drained by earlier saved state, or (for $host2) never registered:
    # resume it, every 5 s.
    if (( i % 5 == 0 )); then
        for node in "$host" "$host2"; do
            state=$(node_state "$node")
            if [[ -n $state ]] && ! usable "$state"; then
                log "$node is $state; trying scontrol update state=resume"
                scontrol update nodename="$node" state=resume 2>&1 || true
            fi
        done
    fi
    sleep 1
done

printf '\n' >&2
sinfo -N -o '%N %P %t %c %m %G' >&2 || true
scontrol show node >&2 || true
show_logs
die "the Slurm nodes did not become idle within ${WAIT_S}s"
