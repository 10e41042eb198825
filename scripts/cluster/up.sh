#!/usr/bin/env bash
# Installs (apt) and starts a real single-node Slurm cluster on this machine, reachable over SSH, for the
# slurm job backend's tests and CI: munged, slurmdbd (accounting in MariaDB, so `sacct` works), slurmctld,
# slurmd (node "localhost", partitions "debug", the default, and "second" on the same node: two "clusters" for
# the tests of runs spread over two) and an sshd on 127.0.0.1:2222 that lets root in with a
# generated key; clients check its host key against a generated known_hosts file. Jobs run as root.
#
# Idempotent: daemons already running are left alone (restarted only when their generated config changed),
# packages already installed are not reinstalled. No systemd needed: every daemon is started by hand, fully
# detached, with its pid file in var/cluster/run/; scripts/cluster/down.sh stops exactly those.
#
# Everything lives under var/cluster/ (override with PZ_CLUSTER_DIR):
#   etc/      slurm.conf, slurmdbd.conf, sshd_config (Slurm finds them through SLURM_CONF: /etc/slurm is
#             not used; sshd sets SLURM_CONF in every session)
#   run/ log/ pid files and one log per daemon;  state/ spool/  slurmctld state and slurmd spool
#   munge/    the cluster's munge key;  ssh/  host key, client key id_ed25519, known_hosts, ssh_config
#   cluster.json, cluster.env   connection facts for Python tests and shells
# Outside it: /run/munge (munged's default socket, which every Slurm command finds unconfigured), /run/sshd
# (sshd's privilege separation directory), and /usr/sbin/policy-rc.d while apt-get runs.
#
# Settings (environment): PZ_CLUSTER_SSH_PORT (2222), PZ_CLUSTER_CPUS (CPUs advertised, default nproc),
# PZ_CLUSTER_DB_HOST/PORT (127.0.0.1/3306), PZ_CLUSTER_DB_ADMIN_USER/PASSWORD (root/empty): a MariaDB
# account allowed to create the accounting database and its user. When nothing listens on that address,
# a private mariadbd is started with its data in var/cluster/mariadb.
set -euo pipefail

# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SSH_DIR=$CLUSTER_DIR/ssh
MUNGE_DIR=$CLUSTER_DIR/munge
# munged's default socket: a socket elsewhere would have to be named in AuthInfo for some Slurm connections
# and in AccountingStoragePass for others.
MUNGE_RUN_DIR=/run/munge
MUNGE_SOCKET=$MUNGE_RUN_DIR/munge.socket.2

CLUSTER_NAME=pz
PARTITION=debug
SECOND_PARTITION=second
SSH_HOST=localhost
SSH_PORT=${PZ_CLUSTER_SSH_PORT:-2222}
SSH_USER=root
CPUS=${PZ_CLUSTER_CPUS:-$(nproc)}
DB_HOST=${PZ_CLUSTER_DB_HOST:-127.0.0.1}
DB_PORT=${PZ_CLUSTER_DB_PORT:-3306}
DB_ADMIN_USER=${PZ_CLUSTER_DB_ADMIN_USER:-root}
DB_ADMIN_PASSWORD=${PZ_CLUSTER_DB_ADMIN_PASSWORD:-}
DB_NAME=slurm_acct_db
DB_USER=pz_slurmdbd
# libpmix2 only keeps Slurm's pmix MPI plugins from logging load errors on every job.
PACKAGES=(munge slurmctld slurmd slurmdbd slurm-client openssh-server mariadb-client libpmix2)

# Jobs must stay visible to squeue/scontrol long enough for tests to look at them (seconds).
MIN_JOB_AGE=3600

((EUID == 0)) || die "run as root: this installs packages and starts daemons as root (try: sudo $0)"
[[ $CPUS =~ ^[1-9][0-9]*$ ]] || die "PZ_CLUSTER_CPUS must be a positive integer, got '$CPUS'"
[[ $SSH_PORT =~ ^[1-9][0-9]*$ ]] || die "PZ_CLUSTER_SSH_PORT must be a port number, got '$SSH_PORT'"

started_at=$SECONDS

mkdir -p "$ETC_DIR" "$RUN_DIR" "$LOG_DIR" "$SSH_DIR" "$CLUSTER_DIR/state/slurmctld" \
    "$CLUSTER_DIR/spool/slurmd"
chmod 700 "$SSH_DIR"
hold_cluster_lock

# --- helpers -------------------------------------------------------------------------------------------

package_missing() { [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null) != "ii "* ]]; }

# Installs the packages among "$@" that are missing. A policy-rc.d answering 101 keeps the packages'
# maintainer scripts from starting their services (we start our own, with our config); any policy-rc.d
# that was there before is put back afterwards.
install_packages() {
    local missing=() package policy=/usr/sbin/policy-rc.d policy_backup rc=0
    for package in "$@"; do
        if package_missing "$package"; then missing+=("$package"); fi
    done
    ((${#missing[@]})) || return 0
    log "installing ${missing[*]}"
    local install_started=$SECONDS
    policy_backup=$(mktemp)
    if [[ -e $policy ]]; then cp -p "$policy" "$policy_backup"; else rm -f "$policy_backup"; fi
    trap 'restore_policy_rc_d "$policy_backup"' EXIT
    printf '#!/bin/sh\n# Written by pz-platform scripts/cluster/up.sh while it installs packages.\nexit 101\n' \
        >"$policy"
    chmod 755 "$policy"
    local apt=(apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}")
    if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" >"$LOG_DIR/apt.log" 2>&1; then
        log "apt-get install failed, refreshing the package lists and retrying"
        apt-get update -q -o DPkg::Lock::Timeout=300 >>"$LOG_DIR/apt.log" 2>&1 || rc=$?
        ((rc == 0)) && { DEBIAN_FRONTEND=noninteractive "${apt[@]}" >>"$LOG_DIR/apt.log" 2>&1 || rc=$?; }
    fi
    restore_policy_rc_d "$policy_backup"
    trap - EXIT
    ((rc == 0)) || { tail -n 20 "$LOG_DIR/apt.log" >&2; die "could not install ${missing[*]} (log: $LOG_DIR/apt.log)"; }
    log "installed in $((SECONDS - install_started))s"
}

restore_policy_rc_d() {
    if [[ -e $1 ]]; then mv -f "$1" /usr/sbin/policy-rc.d; else rm -f /usr/sbin/policy-rc.d; fi
}

# Writes stdin to PATH with MODE when the content differs; succeeds only when it wrote.
write_if_changed() {
    local path=$1 mode=$2 tmp
    tmp=$(mktemp "$path.XXXXXX")
    cat >"$tmp"
    chmod "$mode" "$tmp"
    if [[ -f $path ]] && cmp -s "$tmp" "$path"; then
        rm -f "$tmp"
        return 1
    fi
    mv -f "$tmp" "$path"
}

fail_with_log() {
    local name=$1
    shift
    if [[ -f $LOG_DIR/$name.log ]]; then
        log "last lines of $LOG_DIR/$name.log:"
        tail -n 25 "$LOG_DIR/$name.log" >&2
    fi
    die "$*"
}

# wait_until NAME TIMEOUT WHAT CMD...: polls CMD until it succeeds; fails early if daemon NAME died.
wait_until() {
    local name=$1 timeout=$2 what=$3 pid
    shift 3
    local deadline=$((SECONDS + timeout))
    pid=$(cat "$(pid_file "$name")" 2>/dev/null || true)
    until "$@" >/dev/null 2>&1; do
        pid_alive "$pid" || fail_with_log "$name" "$name exited before $what"
        ((SECONDS < deadline)) || fail_with_log "$name" "$name: no $what after ${timeout}s"
        sleep 0.2
    done
}

# start NAME CMD...: starts the daemon unless it already runs.
start() {
    local name=$1 pid
    if pid=$(daemon_pid "$name"); then
        log "$name already running (pid $pid)"
        return 0
    fi
    log "starting $name"
    start_detached "$@"
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

db_admin() {
    MYSQL_PWD=$DB_ADMIN_PASSWORD mariadb --protocol=tcp -h "$DB_HOST" -P "$DB_PORT" -u "$DB_ADMIN_USER" \
        --batch --skip-column-names "$@"
}

sql_quote() { printf "'%s'" "${1//\'/\'\'}"; }

# --- packages ------------------------------------------------------------------------------------------

install_packages "${PACKAGES[@]}"

# --- munge: the cluster's own key under var/cluster, the default socket --------------------------------

mkdir -p "$MUNGE_DIR" "$MUNGE_RUN_DIR"
if [[ ! -s $MUNGE_DIR/munge.key ]]; then
    mungekey --create --keyfile="$MUNGE_DIR/munge.key" >/dev/null
fi
chown -R munge:munge "$MUNGE_DIR" "$MUNGE_RUN_DIR"
chmod 700 "$MUNGE_DIR"
chmod 755 "$MUNGE_RUN_DIR"
chmod 400 "$MUNGE_DIR/munge.key"
start munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground \
    --key-file="$MUNGE_DIR/munge.key" --socket="$MUNGE_SOCKET" --pid-file="$MUNGE_DIR/munged.pid" \
    --seed-file="$MUNGE_DIR/munged.seed"
munge_roundtrip() { munge --socket="$MUNGE_SOCKET" -n </dev/null | unmunge --socket="$MUNGE_SOCKET"; }
wait_until munged 15 "a working munge socket" munge_roundtrip

# --- MariaDB: the accounting database and the account slurmdbd uses -------------------------------------

if ! db_admin -e 'SELECT 1' >/dev/null 2>&1; then
    if port_open "$DB_HOST" "$DB_PORT"; then
        die "MariaDB at $DB_HOST:$DB_PORT refuses user '$DB_ADMIN_USER': set PZ_CLUSTER_DB_ADMIN_USER and PZ_CLUSTER_DB_ADMIN_PASSWORD to an account that may create databases and users"
    fi
    [[ $DB_HOST == 127.0.0.1 ]] || die "no MariaDB at $DB_HOST:$DB_PORT (a private one is only started on 127.0.0.1)"
    install_packages mariadb-server
    mariadb_data=$CLUSTER_DIR/mariadb
    if [[ ! -d $mariadb_data/mysql ]]; then
        log "initialising a private MariaDB in $mariadb_data"
        mkdir -p "$mariadb_data"
        chown mysql:mysql "$mariadb_data"
        mariadb-install-db --no-defaults --user=mysql --datadir="$mariadb_data" --skip-test-db \
            --auth-root-authentication-method=normal >>"$LOG_DIR/mariadbd.log" 2>&1 ||
            fail_with_log mariadbd "mariadb-install-db failed"
    fi
    start mariadbd /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$mariadb_data" \
        --bind-address=127.0.0.1 --port="$DB_PORT" --socket="$mariadb_data/mariadbd.sock" \
        --pid-file="$mariadb_data/mariadbd.pid"
    wait_until mariadbd 60 "SQL on $DB_HOST:$DB_PORT" db_admin -e 'SELECT 1'
fi

db_password_file=$ETC_DIR/slurmdbd.db-password
if [[ ! -s $db_password_file ]]; then
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$db_password_file")
fi
db_password=$(<"$db_password_file")
{
    printf 'CREATE DATABASE IF NOT EXISTS %s;\n' "$DB_NAME"
    # slurmdbd reaches 127.0.0.1, which MariaDB may see as 'localhost' or as '127.0.0.1'.
    for db_client_host in localhost 127.0.0.1; do
        account="$(sql_quote "$DB_USER")@$(sql_quote "$db_client_host")"
        printf 'CREATE USER IF NOT EXISTS %s IDENTIFIED BY %s;\n' "$account" "$(sql_quote "$db_password")"
        printf 'ALTER USER %s IDENTIFIED BY %s;\n' "$account" "$(sql_quote "$db_password")"
        printf 'GRANT ALL PRIVILEGES ON %s.* TO %s;\n' "$DB_NAME" "$account"
    done
} | db_admin || die "could not create database $DB_NAME and user $DB_USER on $DB_HOST:$DB_PORT"

# --- Slurm configuration -------------------------------------------------------------------------------

# A fresh state folder (first run, `make clean`) would number jobs from 1 again while the accounting
# database still holds the earlier jobs: `sacct -j 5` would then mix two different jobs. Number new jobs
# after the last one accounted for; the choice is kept so later runs generate the same slurm.conf.
first_job_id_file=$ETC_DIR/first_job_id
if [[ ! -s $first_job_id_file ]]; then
    job_table_exists=$(db_admin -e "SELECT COUNT(*) FROM information_schema.tables
        WHERE table_schema = '$DB_NAME' AND table_name = '${CLUSTER_NAME}_job_table'")
    first_job_id=1
    if ((job_table_exists)); then
        first_job_id=$(db_admin -e "SELECT COALESCE(MAX(id_job), 0) + 1 FROM $DB_NAME.${CLUSTER_NAME}_job_table")
    fi
    printf '%s\n' "$first_job_id" >"$first_job_id_file"
fi
first_job_id=$(<"$first_job_id_file")

real_memory_mb=$(($(sed -n 's/^MemTotal:[[:space:]]*\([0-9]*\).*/\1/p' /proc/meminfo) / 1024))
def_mem_per_cpu_mb=$((real_memory_mb / CPUS < 1024 ? real_memory_mb / CPUS : 1024))

slurmdbd_conf_changed=false
write_if_changed "$ETC_DIR/slurmdbd.conf" 600 <<EOF && slurmdbd_conf_changed=true
# Generated by scripts/cluster/up.sh; edits are overwritten.
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
PidFile=$(pid_file slurmdbd)
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=$DB_HOST
StoragePort=$DB_PORT
StorageUser=$DB_USER
StoragePass=$db_password
StorageLoc=$DB_NAME
EOF

slurm_conf_changed=false
write_if_changed "$SLURM_CONF_FILE" 644 <<EOF && slurm_conf_changed=true
# Generated by scripts/cluster/up.sh; edits are overwritten. A single-node test cluster: everything runs
# as root on this machine, jobs included.
ClusterName=$CLUSTER_NAME
SlurmctldHost=localhost
SlurmUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$CLUSTER_DIR/state/slurmctld
SlurmdSpoolDir=$CLUSTER_DIR/spool/slurmd
SlurmctldPidFile=$(pid_file slurmctld)
SlurmdPidFile=$(pid_file slurmd)
SlurmctldDebug=info
SlurmdDebug=info

# No cgroups here: processes are tracked through /proc, and --mem is accounted but not enforced.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30

AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobCompType=jobcomp/none
MailProg=/bin/true

# Start jobs as soon as they are submitted (sbatch -> COMPLETED in about a second); keep finished jobs
# visible to squeue/scontrol for MinJobAge seconds; give scancel'd jobs 5 s between SIGTERM and SIGKILL.
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
MinJobAge=$MIN_JOB_AGE
FirstJobId=$first_job_id
MaxJobCount=100000
MaxArraySize=10001
KillWait=5
InactiveLimit=0
SlurmctldTimeout=120
SlurmdTimeout=300
ReturnToService=2

# Cores and memory are consumable; DefMemPerCPU keeps a job that asks for no memory from taking the whole
# node. config_overrides lets PZ_CLUSTER_CPUS advertise more CPUs than the machine has.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$def_mem_per_cpu_mb
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$real_memory_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=$SECOND_PARTITION Nodes=localhost Default=NO MaxTime=INFINITE State=UP
EOF

if $slurmdbd_conf_changed && daemon_pid slurmdbd >/dev/null; then
    log "slurmdbd.conf changed: restarting slurmdbd"
    stop_daemon slurmdbd
fi
if $slurm_conf_changed; then
    for name in slurmd slurmctld; do
        if daemon_pid "$name" >/dev/null; then
            log "slurm.conf changed: restarting $name"
            stop_daemon "$name"
        fi
    done
fi

# --- Slurm daemons -------------------------------------------------------------------------------------

start slurmdbd /usr/sbin/slurmdbd -D
# The first start creates the accounting tables, which takes a while.
wait_until slurmdbd 120 "answer to sacctmgr" sacctmgr -n -P show cluster format=cluster
if ! sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER_NAME"; then
    log "registering cluster $CLUSTER_NAME with slurmdbd"
    sacctmgr -i add cluster "$CLUSTER_NAME" >/dev/null
fi

start slurmctld /usr/sbin/slurmctld -D
controller_up() { scontrol ping | grep -q 'is UP'; }
wait_until slurmctld 60 "UP answer to scontrol ping" controller_up

start slurmd /usr/sbin/slurmd -D -N localhost
# A node left DOWN or DRAINED by an earlier run (killed slurmd, failed kill) is resumed once its slurmd
# answers again; "*" marks a node whose slurmd does not answer (yet).
node_ready() {
    local state
    state=$(sinfo -h -N -n localhost -o %T)
    case $state in
        *'*' | unknown* | '') return 1 ;;
        down* | drain*) scontrol update NodeName=localhost State=RESUME && return 1 ;;
        *) return 0 ;;
    esac
}
wait_until slurmd 60 "node localhost ready in sinfo" node_ready

# --- sshd: host key, client key, known_hosts -----------------------------------------------------------

mkdir -p /run/sshd
chmod 755 /run/sshd
if [[ ! -s $SSH_DIR/ssh_host_ed25519_key ]]; then
    ssh-keygen -q -t ed25519 -N '' -C "pz-cluster host key" -f "$SSH_DIR/ssh_host_ed25519_key"
fi
if [[ ! -s $SSH_DIR/id_ed25519 ]]; then
    ssh-keygen -q -t ed25519 -N '' -C "pz-cluster client key" -f "$SSH_DIR/id_ed25519"
fi
chmod 600 "$SSH_DIR/ssh_host_ed25519_key" "$SSH_DIR/id_ed25519"
read -r host_key_type host_key _ <"$SSH_DIR/ssh_host_ed25519_key.pub"
printf '[%s]:%s %s %s\n' localhost "$SSH_PORT" "$host_key_type" "$host_key" \
    127.0.0.1 "$SSH_PORT" "$host_key_type" "$host_key" | write_if_changed "$SSH_DIR/known_hosts" 644 || true
printf 'from="127.0.0.1,::1" %s\n' "$(<"$SSH_DIR/id_ed25519.pub")" |
    write_if_changed "$SSH_DIR/authorized_keys" 600 || true

sshd_conf_changed=false
write_if_changed "$ETC_DIR/sshd_config" 644 <<EOF && sshd_conf_changed=true
# Generated by scripts/cluster/up.sh; edits are overwritten. Key-only root login on the loopback
# interface, with the cluster's own host key and authorized_keys (nothing in /etc/ssh or ~/.ssh is used).
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $SSH_DIR/ssh_host_ed25519_key
PidFile none
AuthorizedKeysFile $SSH_DIR/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# The state folder may live anywhere (a CI checkout, /tmp): do not insist on its parents' permissions.
StrictModes no
# Job backends open many sessions at once (parallel polls, log fetches).
MaxStartups 200:30:400
MaxSessions 100
SetEnv SLURM_CONF=$SLURM_CONF_FILE
PrintMotd no
Subsystem sftp internal-sftp
EOF
if $sshd_conf_changed && daemon_pid sshd >/dev/null; then
    log "sshd_config changed: restarting sshd"
    stop_daemon sshd
fi
/usr/sbin/sshd -t -f "$ETC_DIR/sshd_config" || die "sshd rejects $ETC_DIR/sshd_config"
if ! daemon_pid sshd >/dev/null && port_open 127.0.0.1 "$SSH_PORT"; then
    die "port $SSH_PORT on 127.0.0.1 is taken by another program: choose another with PZ_CLUSTER_SSH_PORT"
fi
start sshd /usr/sbin/sshd -D -e -f "$ETC_DIR/sshd_config"

write_if_changed "$SSH_DIR/ssh_config" 644 <<EOF || true
# Generated by scripts/cluster/up.sh: ssh -F $SSH_DIR/ssh_config pz-cluster <command>
Host pz-cluster
    HostName $SSH_HOST
    Port $SSH_PORT
    User $SSH_USER
    IdentityFile $SSH_DIR/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $SSH_DIR/known_hosts
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    BatchMode yes
EOF
ssh_works() { ssh -F "$SSH_DIR/ssh_config" pz-cluster true </dev/null; }
wait_until sshd 30 "key login over SSH" ssh_works

# --- connection facts ----------------------------------------------------------------------------------

json_string() {
    local value=${1//\\/\\\\}
    printf '"%s"' "${value//\"/\\\"}"
}
write_if_changed "$CLUSTER_DIR/cluster.json" 644 <<EOF || true
{
  "host": $(json_string "$SSH_HOST"),
  "port": $SSH_PORT,
  "user": $(json_string "$SSH_USER"),
  "key_path": $(json_string "$SSH_DIR/id_ed25519"),
  "known_hosts": $(json_string "$SSH_DIR/known_hosts"),
  "ssh_config": $(json_string "$SSH_DIR/ssh_config"),
  "slurm_conf": $(json_string "$SLURM_CONF_FILE"),
  "cluster_name": $(json_string "$CLUSTER_NAME"),
  "partition": $(json_string "$PARTITION"),
  "second_partition": $(json_string "$SECOND_PARTITION"),
  "cpus": $CPUS,
  "min_job_age_s": $MIN_JOB_AGE
}
EOF
write_if_changed "$CLUSTER_DIR/cluster.env" 644 <<EOF || true
# Generated by scripts/cluster/up.sh: source it to use the cluster's Slurm commands from this machine.
export SLURM_CONF=$(printf '%q' "$SLURM_CONF_FILE")
export PZ_CLUSTER_SSH_HOST=$(printf '%q' "$SSH_HOST")
export PZ_CLUSTER_SSH_PORT=$SSH_PORT
export PZ_CLUSTER_SSH_USER=$(printf '%q' "$SSH_USER")
export PZ_CLUSTER_SSH_KEY=$(printf '%q' "$SSH_DIR/id_ed25519")
export PZ_CLUSTER_SSH_KNOWN_HOSTS=$(printf '%q' "$SSH_DIR/known_hosts")
EOF

# --- summary -------------------------------------------------------------------------------------------

cat <<EOF
pz test cluster is up ($((SECONDS - started_at))s)
  ssh:          $SSH_USER@$SSH_HOST port $SSH_PORT
  key:          $SSH_DIR/id_ed25519
  known_hosts:  $SSH_DIR/known_hosts
  try:          ssh -F $SSH_DIR/ssh_config pz-cluster sinfo
  locally:      source $CLUSTER_DIR/cluster.env && sinfo
  facts:        $CLUSTER_DIR/cluster.json
$(sinfo)
EOF
