#!/usr/bin/env bash
# CI: a throwaway single-node SLURM cluster (Debian's packages, with accounting: slurmdbd +
# MariaDB) that runs the workflow's `.test` config through `snakemake --profile profiles/slurm`,
# then checks, from SLURM's own accounting (sacct), that every job went through sbatch and
# COMPLETED, that the training jobs asked for a GPU, and that the answer and the report exist.
#
#   .ci/slurm.sh [--venv DIR] [--source DIR | --commit REV] [--no-accounting] [--keep]
#                [--timeout S] [--run CMD]
#
#   --venv DIR     activate this virtual environment first (else `sevi` and `snakemake` must
#                  already be on PATH, e.g. the venv that .ci/run made, activated)
#   --source DIR   the workflow to run (Snakefile, workflow/, config/, .test/, profiles/, src/);
#                  default: this checkout. It is copied into a temporary folder and run there.
#   --commit REV   run `git archive REV` of this repository instead of the working tree
#   --no-accounting  a cluster without slurmdbd (as many small sites): the run adds
#                  --slurm-status-command squeue, and the checks read `scontrol show job`
#   --keep         keep the temporary folder (configs, daemon logs, the run) for inspection
#   --timeout S    wall-clock limit of the workflow run in seconds (default 900)
#   --run CMD      instead of the workflow, run CMD (with bash) in the copy while the cluster is
#                  up, e.g. --run bash for a shell in which sbatch, squeue, sacct work
#
# Needs root (it installs packages if missing, and starts the daemons as root / munge). It runs
# in a container without systemd or cgroups: every daemon runs in the foreground of a background
# shell job, its PID is recorded, and an EXIT trap cancels the cluster's jobs and stops every
# daemon it started by that PID, then removes the temporary folder. Outside that folder, besides
# the apt/pip installs, it only adds for the run (and removes after) a link
# /etc/slurm/slurm.conf -> its own slurm.conf and, unless a munged is already running, munged's
# standard socket folder /run/munge; the daemons use their own ports (16817-16820), key, spool,
# state and database folders. A machine with a SLURM configuration of its own is refused.
#
# Without a cluster, this is also how to try the profile on one machine (see docs/slurm.md,
# "Trying the profile without a cluster").
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
source_dir=$repo
commit=
keep=0
run_timeout=900
venv=
user_cmd=
accounting=1
while [ $# -gt 0 ]; do
    case $1 in
        --venv) venv=$2; shift 2 ;;
        --source) source_dir=$(cd "$2" && pwd); shift 2 ;;
        --commit) commit=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        --no-accounting) accounting=0; shift ;;
        --timeout) run_timeout=$2; shift 2 ;;
        --run) user_cmd=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "slurm.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
if [ -n "$venv" ]; then
    # shellcheck disable=SC1091
    . "$venv/bin/activate"
fi

# Versions: Debian 12's SLURM 22.05; the executor plugin pinned to the version this was
# checked with (Snakemake 9.27).
PLUGIN_SPEC=${SEVI_SLURM_PLUGIN:-snakemake-executor-plugin-slurm==2.8.0}
APT_PACKAGES="slurmctld slurmd slurm-client slurmdbd munge mariadb-server"
NEEDED="slurmctld slurmd sbatch squeue scontrol munged"
[ "$accounting" = 1 ] && NEEDED="$NEEDED sacct sacctmgr slurmdbd mariadbd mariadb-install-db"
CLUSTER=sevici
PARTITION=ci
# Ports away from SLURM's defaults (6817-6819) so that a real installation is not disturbed.
PORT_BASE=${SEVI_SLURM_PORT_BASE:-16817}
CTLD_PORT=$PORT_BASE
SLURMD_PORT=$((PORT_BASE + 1))
DBD_PORT=$((PORT_BASE + 2))
DB_PORT=$((PORT_BASE + 3))
# The node states more memory than the machine has (accepted with config_overrides), so that a
# profile sized for a real site is not refused here; the jobs are tiny.
NODE_MEMORY_MB=${SEVI_SLURM_NODE_MEMORY_MB:-262144}
DEFAULT_CONF=/etc/slurm/slurm.conf   # Debian's compiled-in default

log() { printf 'slurm.sh: %s\n' "$*"; }
die() { printf 'slurm.sh: error: %s\n' "$*" >&2; exit 1; }
t0=$(date +%s)

command -v snakemake >/dev/null || die "snakemake not on PATH (activate the venv or pass --venv)"
command -v sevi >/dev/null || die "sevi not on PATH (activate the venv or pass --venv)"
python=$(command -v python)

# ---- 1. packages (idempotent) -------------------------------------------------------------
missing=
for exe in $NEEDED; do
    command -v "$exe" >/dev/null || missing="$missing $exe"
done
if [ -n "$missing" ]; then
    [ "$(id -u)" = 0 ] || die "missing$missing and not root: install $APT_PACKAGES"
    log "installing $APT_PACKAGES (missing:$missing)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # policy-rc.d / no systemd: the packages' own services are not started, which is wanted.
    apt-get install -y -qq $APT_PACKAGES >/dev/null
fi
if ! "$python" -c "import snakemake_executor_plugin_slurm" 2>/dev/null; then
    log "pip install $PLUGIN_SPEC"
    "$python" -m pip install -q "$PLUGIN_SPEC"
fi
t_install=$(date +%s)

# ---- 2. temporary folder, cleanup trap ----------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sevi-slurm.XXXXXX")
chmod 755 "$tmp"   # munged runs as the munge user and must reach its folder
echo $$ >"$tmp/owner.pid"   # lets a later run tell this run's leftovers (if it is killed) from a live run
declare -A PIDS=()
ORDER=()

stop_all() {
    local rc=$?
    set +e
    if [ -n "${PIDS[slurmctld]:-}" ] && kill -0 "${PIDS[slurmctld]}" 2>/dev/null; then
        # jobs still queued or running (after an error or the time limit): cancel them first, so
        # that no slurmstepd or job process outlives the cluster
        if [ -n "$(squeue -h -o %i 2>/dev/null)" ]; then
            log "cancelling the cluster's remaining jobs"
            scancel --full --user="$(id -un)" 2>/dev/null
            for _ in $(seq 30); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 1; done
        fi
    fi
    local i name pid
    for ((i = ${#ORDER[@]} - 1; i >= 0; i--)); do
        name=${ORDER[i]}
        pid=${PIDS[$name]}
        kill -0 "$pid" 2>/dev/null || continue
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name ($pid) did not stop on TERM; KILL"
            kill -KILL "$pid" 2>/dev/null
        fi
        wait "$pid" 2>/dev/null
        log "stopped $name ($pid)"
    done
    if [ "$rc" != 0 ] && [ -d "$tmp/log" ]; then
        for f in "$tmp"/log/*; do
            [ -s "$f" ] || continue
            [ "${f%.out}" != "$f" ] && [ -s "${f%.out}.log" ] && continue   # same as its .log
            echo "---- last lines of $f"
            tail -n 15 "$f"
        done
    fi
    [ -n "${created_munge_dir:-}" ] && rmdir "$munge_dir" 2>/dev/null
    [ -n "${linked_conf:-}" ] && rm -f "$DEFAULT_CONF"
    if [ "$keep" = 1 ]; then
        log "kept $tmp"
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: run a daemon in the foreground of a background job, record its PID
start() {
    local name=$1
    shift
    "$@" >"$tmp/log/$name.out" 2>&1 &
    PIDS[$name]=$!
    ORDER+=("$name")
    log "started $name (pid ${PIDS[$name]})"
}
alive() { kill -0 "${PIDS[$1]}" 2>/dev/null || die "$1 exited; see its log above"; }
# wait_for NAME SECONDS CMD...: poll CMD (a command or a function; each external try at most
# 10 s) until it succeeds, while daemon NAME is alive; give up after SECONDS
wait_for() {
    local name=$1 limit=$2
    local deadline=$((SECONDS + limit))
    shift 2
    while [ "$SECONDS" -lt "$deadline" ]; do
        "$@" >/dev/null 2>&1 && return 0
        alive "$name"
        sleep 0.3
    done
    die "$name not ready after $limit s"
}
t10() { timeout 10 "$@"; }

mkdir -p "$tmp"/{etc,log,run,state,spool,munge,mysql,wf}
host=$(hostname -s)

# ---- 3. munge: own key, the standard socket ----------------------------------------------
# SLURM 22.05's clients (sacctmgr to slurmdbd) ignore AuthInfo=socket=..., so munged listens on
# the standard /run/munge/munge.socket.2. If a munged already answers there, it is used as it is
# (every daemon and client then shares it, whatever its key); else ours is started with a key
# of its own in the temporary folder and stopped at the end.
munge_dir=/run/munge
if timeout 10 sh -c 'munge -n | unmunge' >/dev/null 2>&1; then
    log "using the munged already running"
else
    [ -d "$munge_dir" ] || { mkdir -p "$munge_dir"; created_munge_dir=1; }
    chown munge:munge "$munge_dir" "$tmp/munge"
    chmod 755 "$munge_dir"
    chmod 700 "$tmp/munge"
    dd if=/dev/urandom of="$tmp/munge/munge.key" bs=1024 count=1 status=none
    chown munge:munge "$tmp/munge/munge.key"
    chmod 400 "$tmp/munge/munge.key"
    start munged setpriv --reuid=munge --regid=munge --init-groups munged --foreground --key-file="$tmp/munge/munge.key" \
        --pid-file="$tmp/munge/munged.pid" --seed-file="$tmp/munge/seed" \
        --log-file="$tmp/log/munged.log" --num-threads=4
    wait_for munged 20 t10 sh -c 'munge -n | unmunge'
fi

# ---- 4. MariaDB + slurmdbd (accounting, so that sacct works) ------------------------------
if [ "$accounting" = 1 ]; then
    db_pass=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
    mariadb-install-db --no-defaults --datadir="$tmp/mysql" --user=root --skip-test-db \
        --auth-root-authentication-method=socket >"$tmp/log/mariadb-install.log" 2>&1 \
        || { cat "$tmp/log/mariadb-install.log"; die "mariadb-install-db: exit status $?"; }
    db_socket=$tmp/run/mysqld.sock
    start mariadbd mariadbd --no-defaults --datadir="$tmp/mysql" --user=root --socket="$db_socket" \
        --port="$DB_PORT" --bind-address=127.0.0.1 --pid-file="$tmp/run/mariadbd.pid" \
        --log-error="$tmp/log/mariadbd.log" --innodb-buffer-pool-size=64M --innodb-log-file-size=48M \
        --innodb-lock-wait-timeout=900 --skip-log-bin
    wait_for mariadbd 60 t10 mariadb --no-defaults -S "$db_socket" -u root -e 'SELECT 1'
    mariadb --no-defaults -S "$db_socket" -u root <<SQL
CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$db_pass';
CREATE USER 'slurm'@'localhost' IDENTIFIED BY '$db_pass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL

    cat >"$tmp/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=$host
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$db_pass
StorageLoc=slurm_acct_db
PidFile=$tmp/run/slurmdbd.pid
LogFile=$tmp/log/slurmdbd.log
DebugLevel=info
EOF
    chmod 600 "$tmp/etc/slurmdbd.conf"
fi

# ---- 5. slurm.conf, gres.conf -------------------------------------------------------------
# The node line from `slurmd -C`, with the stated memory raised and one GPU. The GPU is fake:
# gres.conf gives it a File (/dev/null) as every GPU must have one, else the node drains; SLURM
# hands it out and accounts for it (gres/gpu) like a real one, and sets CUDA_VISIBLE_DEVICES.
accounting_lines() {
    if [ "$accounting" = 1 ]; then
        printf '%s\n' JobAcctGatherType=jobacct_gather/linux \
            AccountingStorageType=accounting_storage/slurmdbd AccountingStorageHost=127.0.0.1 \
            AccountingStoragePort="$DBD_PORT" AccountingStorageTRES=gres/gpu \
            AccountingStoreFlags=job_comment MinJobAge=300
    else
        # finished jobs stay in slurmctld (squeue, scontrol) for an hour: longer than the run
        printf '%s\n' JobAcctGatherType=jobacct_gather/none \
            AccountingStorageType=accounting_storage/none MinJobAge=3600
    fi
}
node_line=$(slurmd -C | head -n 1 | sed -E "s/RealMemory=[0-9]+/RealMemory=$NODE_MEMORY_MB/")
case $node_line in NodeName=*) ;; *) die "unexpected slurmd -C output: $node_line" ;; esac
cat >"$tmp/etc/slurm.conf" <<EOF
ClusterName=$CLUSTER
# every address is the loopback one: no name resolution is needed in a container
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/run/slurmctld.pid
SlurmdPidFile=$tmp/run/slurmd.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# a container without systemd or usable cgroups
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherFrequency=5
# --gpus needs cons_tres (on a cons_res site, request gres=gpu:1 instead; see the profile)
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
GresTypes=gpu
JobCompType=jobcomp/none
InactiveLimit=0
KillWait=10
$(accounting_lines)
$node_line NodeAddr=127.0.0.1 Gres=gpu:1 State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
echo "Name=gpu File=/dev/null" >"$tmp/etc/gres.conf"
export SLURM_CONF=$tmp/etc/slurm.conf
# Inside a job, the plugin's jobstep executor calls srun with every SLURM_* variable removed from
# the environment, SLURM_CONF too, so srun must find the configuration at the compiled-in
# default path: that path is made a link to ours for the run, as on a real site. A machine that
# has a SLURM configuration of its own there is refused rather than shadowed.
# A link into another run's folder is that run's: left alone while the run is alive, removed
# (with the folder) when the run was killed before its EXIT trap could clean up.
if [ -L "$DEFAULT_CONF" ] && [[ $(readlink "$DEFAULT_CONF") == */sevi-slurm.*/etc/slurm.conf ]]; then
    old_tmp=$(dirname "$(dirname "$(readlink "$DEFAULT_CONF")")")
    old_pid=$(cat "$old_tmp/owner.pid" 2>/dev/null || true)
    if [ -z "$old_pid" ] || ! kill -0 "$old_pid" 2>/dev/null; then
        log "removing $DEFAULT_CONF and $old_tmp, left by a killed earlier run"
        pkill -TERM -f -- "$old_tmp" 2>/dev/null && sleep 2   # its daemons, if they outlived it
        rm -f "$DEFAULT_CONF"
        rm -rf "$old_tmp"
    else
        die "$DEFAULT_CONF is in use by a running slurm.sh (pid $old_pid)"
    fi
fi
[ -e "$DEFAULT_CONF" ] && die "$DEFAULT_CONF exists: this machine has a SLURM of its own (this script is for machines without one)"
mkdir -p "$(dirname "$DEFAULT_CONF")"
ln -s "$SLURM_CONF" "$DEFAULT_CONF"
linked_conf=1

# ---- 6. daemons ---------------------------------------------------------------------------
if [ "$accounting" = 1 ]; then
    start slurmdbd slurmdbd -D
    wait_for slurmdbd 60 t10 sacctmgr -n list cluster
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
fi
start slurmctld slurmctld -D -f "$SLURM_CONF"
wait_for slurmctld 60 t10 scontrol ping
start slurmd slurmd -D -f "$SLURM_CONF"
node_idle() { [ "$(t10 sinfo -h -N -o %T | sort -u)" = idle ]; }
wait_for slurmd 60 node_idle
sinfo -N -o '%N %T %c %m %G' | sed 's/^/  /'
t_up=$(date +%s)
log "cluster up in $((t_up - t_install)) s (package check/install $((t_install - t0)) s)"

# ---- 7. the workflow's .test config through the profile -----------------------------------
wd=$tmp/wf
if [ -n "$commit" ]; then
    git -C "$repo" archive "$commit" | tar -x -C "$wd"
    log "workflow: git archive $commit"
else
    for name in Snakefile workflow config .test profiles src; do
        [ -e "$source_dir/$name" ] && cp -r "$source_dir/$name" "$wd/$name"
    done
    log "workflow: copy of $source_dir"
fi
[ -f "$wd/.test/config/config.yaml" ] || die "no .test/config/config.yaml in the workflow"
# the jobs use the library of the copy (the same code as the venv's editable install when the
# source is this checkout; that commit's code with --commit)
if [ -d "$wd/src" ]; then
    export PYTHONPATH=$wd/src${PYTHONPATH:+:$PYTHONPATH}
fi
export NUMBA_NUM_THREADS=1
if [ -n "$user_cmd" ]; then
    log "cluster $CLUSTER is up; SLURM_CONF=$SLURM_CONF; running: $user_cmd"
    set +e
    (cd "$wd" && bash -c "$user_cmd")
    rc=$?
    set -e
    log "$user_cmd: exit status $rc"
    exit "$rc"
fi
# Besides the profile, only the first status check comes sooner (the plugin's default waits
# 40 s, too long for jobs of seconds) and SLURM's job logs are kept (.snakemake/slurm_logs).
cmd=(snakemake --profile profiles/slurm --configfile .test/config/config.yaml
     --slurm-init-seconds-before-status-checks 5 --slurm-keep-successful-logs)
[ "$accounting" = 1 ] || cmd+=(--slurm-status-command squeue)
log "+ ${cmd[*]}"
set +e
(cd "$wd" && timeout --signal=TERM --kill-after=60 "$run_timeout" "${cmd[@]}") >"$tmp/log/snakemake.out" 2>&1
run_rc=$?
set -e
t_run=$(date +%s)
log "workflow finished with exit status $run_rc in $((t_run - t_up)) s"
if [ "$run_rc" != 0 ]; then
    tail -n 60 "$tmp/log/snakemake.out"
    [ "$run_rc" = 124 ] && die "the workflow run reached its ${run_timeout} s limit"
    for f in "$wd"/results/logs/*.log "$wd"/results/logs/*/*.log; do
        [ -s "$f" ] || continue
        grep -qi -E "error|traceback" "$f" || continue
        echo "---- $f"
        tail -n 20 "$f"
    done
    die "the workflow run stopped with exit status $run_rc (job logs above)"
fi

# ---- 8. checks from SLURM's accounting (or slurmctld's job records) -----------------------
if [ "$accounting" = 1 ]; then
    # Accounting reaches slurmdbd asynchronously: wait until no job of the cluster is unfinished.
    for _ in $(seq 60); do
        pending=$(sacct -a -n -P -X --starttime=now-1day -o State | grep -v -c -E '^(COMPLETED|FAILED|CANCELLED.*|TIMEOUT|OUT_OF_MEMORY|NODE_FAIL)$' || true)
        [ "$pending" = 0 ] && break
        sleep 1
    done
    sacct -a -n -P --starttime=now-1day \
        -o JobID,JobName,Comment%200,State,ExitCode,Elapsed,ReqTRES%200,AllocTRES%200,MaxRSS,NCPUS \
        >"$tmp/jobs.txt"
    source_name=sacct
else
    scontrol -d -o show job >"$tmp/jobs.txt"
    source_name="scontrol show job"
fi
"$python" - "$tmp/jobs.txt" "$tmp/log/snakemake.out" "$wd" "$source_name" <<'PY'
import re
import sys
from collections import Counter
from pathlib import Path

records, run_log, wd, source = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
TRAINING = {"pretrain", "finetune"}

def gpus(tres):
    m = re.search(r"gres[/:]gpu(?::[\w.]+)?[=:](\d+)", tres)
    return int(m.group(1)) if m else 0

def mb(rss):
    units = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
    if not rss:
        return 0.0
    # sacct's MaxRSS of a step (every process of it, Snakemake's own ~140 MB included)
    return float(rss[:-1]) * units[rss[-1]] if rss[-1] in units else float(rss) / 2**20

def sacct_rows(text):
    for line in text.splitlines():
        yield line.split("|")

def scontrol_rows(text):
    """`scontrol -d -o show job` lines as sacct's fields (no steps, no MaxRSS; allocated GPUs
    from JOB_GRES, since without accounting gres/gpu is no TRES)."""
    for line in text.splitlines():
        f = dict(re.findall(r"(\w+)=(\S*)", line))
        if "JobId" not in f:
            continue
        yield (f["JobId"], f.get("JobName", ""), f.get("Comment", ""), f.get("JobState", ""),
               f.get("ExitCode", ""), f.get("RunTime", ""), f.get("TresPerJob", "") or f.get("TresPerNode", ""),
               "gres:" + f.get("JOB_GRES", ""), "", f.get("NumCPUs", ""))

text = records.read_text()
jobs, peak = {}, Counter()
for row in (sacct_rows(text) if source == "sacct" else scontrol_rows(text)):
    jobid, name, comment, state, exitcode, elapsed, req, alloc, maxrss, ncpus = row
    base = jobid.split(".")[0]
    if "." in jobid:
        peak[base] = max(peak[base], mb(maxrss))
        continue
    m = re.match(r"rule_(\w+?)(?:_wildcards_(.*))?$", comment)
    rule, wildcards = (m.group(1), m.group(2) or "") if m else ("?", comment)
    jobs[base] = dict(rule=rule, wildcards=wildcards, state=state, exit=exitcode, elapsed=elapsed,
                      req=gpus(req), alloc=gpus(alloc), ncpus=ncpus)

# the jobs Snakemake planned: its "Job stats" table at the start of the run (minus `all`)
text = run_log.read_text()
block = text.split("Job stats:", 1)[1].split("total", 1)[0] if "Job stats:" in text else ""
planned = {r: int(n) for r, n in re.findall(r"^(\w+)\s+(\d+)\s*$", block, re.M)}
planned.pop("all", None)

rows = [("jobid", "rule", "wildcards", "state", "exit", "elapsed", "cpus", "peak MB",
         "ReqTRES gpu", "AllocTRES gpu")]
for jid in sorted(jobs, key=int):
    j = jobs[jid]
    rows.append((jid, j["rule"], j["wildcards"][:32], j["state"], j["exit"], j["elapsed"],
                 j["ncpus"], f"{peak[jid]:.0f}" if peak[jid] else "-", str(j["req"]), str(j["alloc"])))
widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
print(f"{source} (every job of the throwaway cluster):")
for k, r in enumerate(rows):
    print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)))
    if k == 0:
        print("  " + "  ".join("-" * w for w in widths))

problems = []
if not planned:
    problems.append("no 'Job stats' table in the Snakemake log")
ran = Counter(j["rule"] for j in jobs.values())
for rule in sorted(set(planned) | set(ran)):
    if planned.get(rule, 0) != ran.get(rule, 0):
        problems.append(f"rule {rule}: {planned.get(rule, 0)} jobs planned, {ran.get(rule, 0)} went through sbatch")
for jid, j in jobs.items():
    if j["state"] != "COMPLETED" or j["exit"] != "0:0":
        problems.append(f"job {jid} ({j['rule']}): {j['state']} exit {j['exit']}")
    want = 1 if j["rule"] in TRAINING else 0
    if j["req"] != want or j["alloc"] != want:
        problems.append(f"job {jid} ({j['rule']}): requested {j['req']} / got {j['alloc']} GPUs, expected {want}")
for rule in TRAINING:
    if not ran.get(rule):
        problems.append(f"no {rule} job ran")
for out in ("results/final.h5", "results/report.md"):
    if not (wd / out).is_file() or (wd / out).stat().st_size == 0:
        problems.append(f"{out} missing or empty")
print(f"slurm: {len(jobs)} jobs through sbatch ({', '.join(f'{r} {n}' for r, n in sorted(ran.items()))})")
if problems:
    print("slurm: problems:")
    print("\n".join("  " + p for p in problems))
    sys.exit(1)
print("slurm: every job COMPLETED; pretrain/finetune each held 1 GPU, no other job any; "
      "results/final.h5 and results/report.md written")
PY
t_end=$(date +%s)
log "timings: packages $((t_install - t0)) s, cluster set-up $((t_up - t_install)) s," \
    "workflow through SLURM $((t_run - t_up)) s, checks $((t_end - t_run)) s, total $((t_end - t0)) s"
