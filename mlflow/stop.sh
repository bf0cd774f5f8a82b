#!/usr/bin/env bash
# Stop the MLflow tracking server that mlflow/serve.sh started, and nothing else.
#
#   mlflow/stop.sh [--data-dir DIR | --pid-file FILE] [--timeout SECONDS]
#
# Reads the PID that serve.sh recorded (default <data dir>/mlflow-server.pid, the data dir
# being MLFLOW_DATA_DIR or <repo>/runs/mlflow-server; MLFLOW_PID_FILE also works). serve.sh
# starts the server in its own session, so that PID is also the id of the process group of
# the mlflow CLI, uvicorn and its workers. This script checks that the group still holds an
# MLflow server (a PID can be reused), sends SIGTERM to the group, waits up to --timeout
# seconds (MLFLOW_STOP_TIMEOUT_S, default 30), then sends SIGKILL to what is left, and
# removes the pid file. It never looks processes up by name.
#
# Exit status: 0 stopped or not running; 1 the group does not look like an MLflow server
# (left alone) or would not die; 2 usage error.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"

die() { echo "stop.sh: $*" >&2; exit 2; }

data_dir="${MLFLOW_DATA_DIR:-$repo/runs/mlflow-server}"
pid_file="${MLFLOW_PID_FILE:-}"
timeout="${MLFLOW_STOP_TIMEOUT_S:-30}"

need_value() { [[ $# -ge 2 && -n "$2" ]] || die "$1: expected a value, got nothing"; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --data-dir) need_value "$@"; data_dir="$2"; shift 2 ;;
        --pid-file) need_value "$@"; pid_file="$2"; shift 2 ;;
        --timeout) need_value "$@"; timeout="$2"; shift 2 ;;
        -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
[[ "$timeout" =~ ^[0-9]+$ ]] || die "timeout: expected whole seconds, got '$timeout'"
pid_file="${pid_file:-$data_dir/mlflow-server.pid}"

if [[ ! -e "$pid_file" ]]; then
    echo "stop.sh: no pid file $pid_file; nothing to stop"
    exit 0
fi
pgid="$(tr -d '[:space:]' <"$pid_file")"
[[ "$pgid" =~ ^[0-9]+$ ]] && (( pgid > 1 )) \
    || die "pid file $pid_file: expected a process id, got '$pgid'"

# PIDs of the live processes whose process group is $pgid (read from /proc, not by name).
members() {
    local stat rest pid
    for stat in /proc/[0-9]*/stat; do
        pid="${stat#/proc/}"; pid="${pid%/stat}"
        { read -r rest <"$stat"; } 2>/dev/null || continue
        rest="${rest##*) }"                 # drop "pid (comm) "; comm may hold spaces
        read -r _state _ppid pgrp _ <<<"$rest" || continue
        # a zombie has exited already (it only waits for its parent to reap it)
        [[ "$pgrp" == "$pgid" && "$_state" != Z ]] && echo "$pid"
    done
    return 0
}

running="$(members)"
if [[ -z "$running" ]]; then
    echo "stop.sh: server pid $pgid is not running; removing $pid_file"
    rm -f "$pid_file"
    exit 0
fi

ours=0
for p in $running; do
    cmd="$( (tr '\0' ' ' <"/proc/$p/cmdline") 2>/dev/null || true)"
    if [[ "$cmd" == *mlflow* || "$cmd" == *uvicorn* ]]; then ours=1; fi
done
if (( ! ours )); then
    echo "stop.sh: process group $pgid from $pid_file is not an MLflow server" \
         "(pids: $(echo $running)); leaving it alone and removing the stale pid file" >&2
    rm -f "$pid_file"
    exit 1
fi

kill -TERM -- "-$pgid" 2>/dev/null || true
deadline=$(( SECONDS + timeout ))
while [[ -n "$(members)" ]] && (( SECONDS < deadline )); do sleep 0.2; done
if [[ -n "$(members)" ]]; then
    echo "stop.sh: still running after ${timeout}s; sending SIGKILL to process group $pgid" >&2
    kill -KILL -- "-$pgid" 2>/dev/null || true
    for _ in $(seq 50); do [[ -z "$(members)" ]] && break; sleep 0.1; done
fi
if [[ -n "$(members)" ]]; then
    echo "stop.sh: process group $pgid would not die (pids: $(echo $(members)))" >&2
    exit 1
fi
rm -f "$pid_file"
echo "stopped MLflow tracking server (process group $pgid)"
