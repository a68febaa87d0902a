#!/usr/bin/env bash
# A real two-node Slurm cluster on this one machine, for pympc's Slurm tests (docs/testing.md).
#
#   slurm/testcluster.sh start     install what is missing, start it, wait for both nodes idle
#   slurm/testcluster.sh status    exit 0 when both nodes answer, 3 when the cluster is down
#   slurm/testcluster.sh exec CMD  run CMD "on the login node": in the controller's network
#                                  namespace, with SLURM_CONF set (srun needs an address there)
#   slurm/testcluster.sh stop      stop every daemon and job by its pid, remove the namespaces
#
# Root only (network namespaces, unshare, mount). Idempotent: start on a running cluster
# checks it and returns; stop on a stopped one does nothing.
#
# Layout. Everything lives in namespaces this script creates and in $BASE. On the host it
# writes only /etc/netns/pympc-* (each namespace's hosts file), Debian's /etc/munge/munge.key
# when there is none, and /usr/sbin/policy-rc.d for the length of an install (so that no
# package starts a daemon); the host's own network, /etc/hosts and /etc/slurm are never touched:
#
#   pympc-ctl  network namespace: the bridge pympcbr0 (10.251.7.1/24), slurmctld, a private
#              munged (its socket is a file under $BASE), and the client commands
#   pympc-nK   node K: its own network namespace (eth0 = 10.251.7.1K/24, a veth whose other
#              end is on the bridge), and, for its slurmd, its own UTS (hostname nodeK), IPC
#              and mount namespace (its own /etc/hosts)
#
# Why each piece (measured; ../shared/slurm-multinode/README.md has the full story):
# * slurmd starts under nsenter + unshare, not `ip netns exec`: that one remounts /sys for
#   the namespace, hides /sys/fs/cgroup, and slurmd 22.05 then refuses to start.
# * Each node has its own IPC namespace: with a shared one, UCX (MPICH's network layer)
#   takes the two "nodes" for one machine and moves MPI data through shared memory, not TCP.
# * MPICH 4.0.2 + UCX 1.13.1 now and then spin forever in MPI_Finalize over TCP. A TaskProlog
#   preloads slurm/testcluster-ucx.c (built here) into every task of this cluster only. It is
#   the test cluster's work-around for Debian's MPICH/UCX pair; pympc itself carries none.
# * Slurm's own delays are set short so that the time-limit test takes about two minutes:
#   cred_expire=10 (a requeued job may start again 11 s later), sched_interval=2.
# * MaxArraySize=6 (Slurm's default: 1001), so that the tests meet a sweep larger than an
#   array may be and see pympc pack its points; MinJobAge=3600 keeps ended jobs in squeue
#   for the whole test session (the tests poll squeue; pympc's status reads sacct -c).
# * No accounting daemon (as on many small clusters): jobcomp/filetxt writes the job
#   completion log that `sacct -c` and `pympc slurm status` read.
set -euo pipefail

P=pympc
NET=10.251.7
NODES=2
BASE=${PYMPC_TESTCLUSTER_DIR:-/var/lib/pympc-slurm}
CTL=$P-ctl
BR=${P}br0
CONF=$BASE/etc/slurm.conf
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T0=$(date +%s%N)

say() { local ms=$((($(date +%s%N) - T0) / 1000000)); printf '[testcluster %d.%03d s] %s\n' $((ms / 1000)) $((ms % 1000)) "$*" >&2; }
die() { printf '[testcluster] ERROR: %s\n' "$*" >&2; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "the test cluster needs root (network namespaces, unshare, mount); run as root"; }
ns_list() { echo "$CTL"; for i in $(seq 1 $NODES); do echo "$P-n$i"; done; }
node_ip() { echo "$NET.$((10 + $1))"; }

# alive PIDFILE NAME: the pid file names a live process called NAME
alive() {
    [ -s "$1" ] || return 1
    local p; p=$(cat "$1")
    [ -d "/proc/$p" ] && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$2" ]
}

# ------------------------------------------------------------------------------ packages
alternatives() { for a in mpi mpirun mpicc; do printf '%s=%s ' "$a" "$(readlink -f "/etc/alternatives/$a" 2>/dev/null || true)"; done; }

install_packages() {
    local missing=0 c
    for c in slurmctld slurmd sinfo munged mungekey ip unshare nsenter gcc; do command -v "$c" >/dev/null || missing=1; done
    [ "$missing" = 0 ] && return 0
    command -v apt-get >/dev/null || die "slurmctld/slurmd/munge are missing and this is no Debian (no apt-get)"
    say "installing Debian's slurmctld slurmd slurm-client munge (--no-install-recommends)"
    local before; before=$(alternatives)
    # no daemon may start from a package's post-install script: this script starts its own
    local policy=/usr/sbin/policy-rc.d ours=0
    if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; ours=1; fi
    export DEBIAN_FRONTEND=noninteractive
    # never Open MPI: it would take over the mpicc/mpiexec alternatives
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge iproute2 util-linux gcc libc6-dev >/dev/null; } \
        || { [ "$ours" = 1 ] && rm -f "$policy"; die "apt-get install slurmctld slurmd slurm-client munge failed"; }
    [ "$ours" = 1 ] && rm -f "$policy"
    local after; after=$(alternatives)
    if [ "$before" != "$after" ]; then
        say "the MPI alternatives moved ($before -> $after): putting MPICH back"
        for a in mpi mpirun; do update-alternatives --set "$a" "$(update-alternatives --list "$a" | grep mpich | head -n1)" || true; done
    fi
}

# ------------------------------------------------------------------------------ network
make_ns() {
    [ -e "/run/netns/$1" ] || ip netns add "$1"
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$1" link set lo up
}

network() {
    make_ns "$CTL"
    ip -n "$CTL" link show "$BR" >/dev/null 2>&1 || ip -n "$CTL" link add "$BR" type bridge
    ip -n "$CTL" -4 addr show dev "$BR" | grep -q " $NET.1/" || ip -n "$CTL" addr add "$NET.1/24" dev "$BR"
    ip -n "$CTL" link set "$BR" up
    local hosts="127.0.0.1 localhost
$NET.1 ctl" i ns
    for i in $(seq 1 $NODES); do
        ns=$P-n$i
        make_ns "$ns"
        if ! ip -n "$CTL" link show "veth$i" >/dev/null 2>&1; then
            ip -n "$ns" link del eth0 2>/dev/null || true
            # the pair is made inside the two namespaces: nothing appears in the host's
            ip -n "$CTL" link add "veth$i" type veth peer name eth0 netns "$ns"
        fi
        ip -n "$CTL" link set "veth$i" master "$BR" up
        ip -n "$ns" -4 addr show dev eth0 | grep -q " $(node_ip "$i")/" || ip -n "$ns" addr add "$(node_ip "$i")/24" dev eth0
        ip -n "$ns" link set eth0 up
        hosts="$hosts
$(node_ip "$i") node$i"
    done
    for ns in $(ns_list); do
        install -d "/etc/netns/$ns"
        printf '%s\n' "$hosts" > "/etc/netns/$ns/hosts"
    done
}

# ------------------------------------------------------------------------------ munge, shim, conf
munge_up() {
    getent passwd munge >/dev/null || die "no user 'munge' (the munge package makes it)"
    install -d -o munge -g munge -m 0755 "$BASE/munge"
    [ -s /etc/munge/munge.key ] || mungekey --create >/dev/null 2>&1 || die "could not create /etc/munge/munge.key"
    local sock=$BASE/munge/socket
    if ! alive "$BASE/munge/munged.pid" munged; then
        rm -f "$sock" "$sock.lock"
        ip netns exec "$CTL" runuser -u munge -- munged --socket="$sock" --pid-file="$BASE/munge/munged.pid" \
            --log-file="$BASE/munge/munged.log" --seed-file="$BASE/munge/seed" --key-file=/etc/munge/munge.key 2>>"$BASE/munge/munged.stderr"
        local _; for _ in $(seq 1 100); do [ -S "$sock" ] && break; sleep 0.05; done
    fi
    munge -S "$sock" -n </dev/null | unmunge -S "$sock" >/dev/null || die "munged does not answer on $sock"
}

shim() {  # the MPI_Finalize work-around, into every task of this cluster (see the header)
    local so=$BASE/lib/testcluster-ucx.so src=$HERE/testcluster-ucx.c
    install -d "$BASE/lib"
    [ -f "$so" ] && [ "$so" -nt "$src" ] || gcc -shared -fPIC -O2 -o "$so" "$src"
    cat > "$BASE/etc/task-prolog.sh" <<EOF
#!/bin/sh
# slurmstepd applies each "export NAME=value" line a TaskProlog prints to the task
case ":\${LD_PRELOAD:-}:" in *":$so:"*) ;; *) echo "export LD_PRELOAD=$so\${LD_PRELOAD:+:\$LD_PRELOAD}" ;; esac
EOF
    chmod 755 "$BASE/etc/task-prolog.sh"
}

write_conf() {  # prints 1 when slurm.conf changed
    # every core of the machine per node (nproc alone obeys OMP_NUM_THREADS, which pympc sets to 1)
    local cpus; cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
    local new
    new=$(cat <<EOF
# pympc's test cluster (slurm/testcluster.sh): two nodes in network namespaces
ClusterName=pympc
SlurmctldHost=ctl($NET.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$BASE/munge/socket,cred_expire=10
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool/%n
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd-%n.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
TaskProlog=$BASE/etc/task-prolog.sh
MpiDefault=pmi2
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$BASE/log/jobcomp.log
JobRequeue=0
MaxArraySize=6
KillWait=5
MinJobAge=3600
InactiveLimit=0
$(for i in $(seq 1 $NODES); do echo "NodeName=node$i NodeHostname=node$i NodeAddr=$(node_ip "$i") CPUs=$cpus RealMemory=2000 State=UNKNOWN"; done)
PartitionName=debug Nodes=node[1-$NODES] Default=YES MaxTime=INFINITE State=UP
EOF
)
    if [ -f "$CONF" ] && [ "$(cat "$CONF")" = "$new" ]; then echo 0; else printf '%s\n' "$new" > "$CONF"; echo 1; fi
}

# ------------------------------------------------------------------------------ daemons
stop_pid() {  # stop_pid PIDFILE NAME: TERM it, wait up to 10 s, then KILL
    alive "$1" "$2" || { rm -f "$1"; return 0; }
    local p; p=$(cat "$1")
    kill -TERM "$p" 2>/dev/null || true
    local _; for _ in $(seq 1 100); do [ -d "/proc/$p" ] || break; sleep 0.1; done
    [ -d "/proc/$p" ] && kill -KILL "$p" 2>/dev/null || true
    rm -f "$1"
}

daemons() {
    local changed=$1 i ns
    if [ "$changed" = 1 ]; then  # 22.05 cannot add nodes on reconfigure: restart
        for i in $(seq 1 $NODES); do stop_pid "$BASE/run/slurmd-node$i.pid" slurmd; done
        stop_pid "$BASE/run/slurmctld.pid" slurmctld
    fi
    if ! alive "$BASE/run/slurmctld.pid" slurmctld; then
        nsenter --net="/run/netns/$CTL" unshare --uts --mount --propagation private sh -c \
            "mount --bind /etc/netns/$CTL/hosts /etc/hosts && hostname ctl && exec slurmctld -f '$CONF'"
    fi
    for i in $(seq 1 $NODES); do
        ns=$P-n$i
        alive "$BASE/run/slurmd-node$i.pid" slurmd && continue
        install -d "$BASE/spool/node$i"
        nsenter --net="/run/netns/$ns" unshare --uts --ipc --mount --propagation private sh -c \
            "mount --bind /etc/netns/$ns/hosts /etc/hosts && hostname node$i && exec slurmd -f '$CONF' -N node$i"
    done
}

client() { ip netns exec "$CTL" env SLURM_CONF="$CONF" "$@"; }

idle_nodes() { client sinfo -h -N -o '%N %T' 2>/dev/null | grep -cE ' (idle|mixed|allocated|completing)$' || true; }

start() {
    need_root
    install_packages
    install -d "$BASE"/{etc,run,log,state,spool}
    network
    munge_up
    shim
    local changed; changed=$(write_conf)
    daemons "$changed"
    local n=0 _
    for _ in $(seq 1 200); do n=$(idle_nodes); [ "$n" -ge $NODES ] && break; sleep 0.1; done
    [ "$n" -ge $NODES ] || die "the nodes did not come up; see $BASE/log/"
    say "cluster up: $NODES nodes idle; client commands: $0 exec sinfo"
}

status() {
    [ -e "/run/netns/$CTL" ] && alive "$BASE/run/slurmctld.pid" slurmctld || { echo "test cluster: down"; return 3; }
    local n; n=$(idle_nodes)
    client sinfo -N -o '%N %T %c'
    [ "$n" -ge $NODES ] || { echo "test cluster: $n of $NODES nodes up"; return 3; }
    echo "test cluster: up ($NODES nodes; SLURM_CONF=$CONF; namespace $CTL)"
}

stop() {
    need_root
    local f i ns p
    # TERM the Slurm daemons together (each takes a second or two), then wait for each
    for f in "$BASE"/run/slurmd-*.pid "$BASE/run/slurmctld.pid"; do
        alive "$f" slurmd || alive "$f" slurmctld || continue
        kill -TERM "$(cat "$f")" 2>/dev/null || true
    done
    for i in $(seq 1 $NODES); do stop_pid "$BASE/run/slurmd-node$i.pid" slurmd; done
    stop_pid "$BASE/run/slurmctld.pid" slurmctld
    # what still runs in our namespaces was started by our daemons (job steps, tasks)
    for ns in $(ns_list); do
        [ -e "/run/netns/$ns" ] || continue
        for p in $(ip netns pids "$ns" 2>/dev/null); do
            [ "$(cat "/proc/$p/comm" 2>/dev/null)" = munged ] || kill -KILL "$p" 2>/dev/null || true
        done
    done
    stop_pid "$BASE/munge/munged.pid" munged
    for ns in $(ns_list); do
        [ -e "/run/netns/$ns" ] && ip netns del "$ns"
        rm -rf "/etc/netns/$ns"
    done
    rmdir /etc/netns 2>/dev/null || true
    rm -rf "$BASE"
    say "cluster stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    exec) shift; [ $# -gt 0 ] || die "usage: $0 exec COMMAND [ARGS]"; need_root; exec ip netns exec "$CTL" env SLURM_CONF="$CONF" "$@" ;;
    *) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
