#!/usr/bin/env bash
# Start the MLflow tracking server that tgo sweeps log to (UI + REST API + artifact proxy).
#
#   mlflow/serve.sh [--data-dir DIR] [--backend-store-uri URI] [--host HOST] [--port PORT]
#                   [--workers N] [--pid-file FILE] [--log-file FILE] [--wait]
#                   [--wait-timeout SECONDS] [--check] [-- EXTRA MLFLOW SERVER OPTIONS...]
#
# Defaults (each also settable by environment variable):
#   data dir   MLFLOW_DATA_DIR              <repo>/runs/mlflow-server
#   backend    MLFLOW_BACKEND_STORE_URI     sqlite:///<data dir>/mlflow.db
#              (PostgreSQL: postgresql://USER@HOST:PORT/DB, password in PGPASSWORD or PGPASSFILE)
#   artifacts  MLFLOW_ARTIFACTS_DESTINATION <data dir>/mlartifacts (proxied: --serve-artifacts)
#   host       MLFLOW_HOST                  127.0.0.1 (loopback only; 0.0.0.0 opens it to all)
#   port       MLFLOW_PORT                  5000
#   workers    MLFLOW_WORKERS               1 (uvicorn worker processes)
#   pid file   MLFLOW_PID_FILE              <data dir>/mlflow-server.pid
#   log file   MLFLOW_LOG_FILE              <data dir>/mlflow-server.log
#   wait       MLFLOW_WAIT_TIMEOUT_S        90 (with --wait: seconds to wait for /health)
#
# The server runs in the background in a new session (its PID is its process group id);
# the PID goes to the pid file, and mlflow/stop.sh stops exactly that process group.
# Prints "MLflow tracking server: http://HOST:PORT (pid N)" and, with --wait, returns only
# once GET /health answers 200 (exit 1 if the server dies or the wait times out).
#
# Before it starts a server on a database that exists (PostgreSQL, or a SQLite file), it
# connects to it and says what is wrong if it cannot (python -m tune.tracking.backend_store),
# refuses a URI with a password in it, and runs MLflow's schema migrations (mlflow db
# upgrade, which also creates the tables of an empty database before the workers start).
# --check does only that and starts nothing.
#
# Artifacts are proxied (--serve-artifacts): new experiments get the artifact root
# mlflow-artifacts:/ and clients upload and download through this server over HTTP, so a
# Ray worker on another machine can log pareto.png or a model without sharing a filesystem
# with the server. (--default-artifact-root DIR would hand clients a plain path that each
# client writes to on its own disk.)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"

usage() { sed -n '2,34p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { echo "serve.sh: $*" >&2; exit 2; }

data_dir="${MLFLOW_DATA_DIR:-$repo/runs/mlflow-server}"
host="${MLFLOW_HOST:-127.0.0.1}"
port="${MLFLOW_PORT:-5000}"
workers="${MLFLOW_WORKERS:-1}"
pid_file="${MLFLOW_PID_FILE:-}"
log_file="${MLFLOW_LOG_FILE:-}"
wait_timeout="${MLFLOW_WAIT_TIMEOUT_S:-90}"
do_wait=0
check_only=0
backend="${MLFLOW_BACKEND_STORE_URI:-}"
extra=()

need_value() { [[ $# -ge 2 && -n "$2" ]] || die "$1: expected a value, got nothing"; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --data-dir) need_value "$@"; data_dir="$2"; shift 2 ;;
        --backend-store-uri) need_value "$@"; backend="$2"; shift 2 ;;
        --check) check_only=1; shift ;;
        --host) need_value "$@"; host="$2"; shift 2 ;;
        --port) need_value "$@"; port="$2"; shift 2 ;;
        --workers) need_value "$@"; workers="$2"; shift 2 ;;
        --pid-file) need_value "$@"; pid_file="$2"; shift 2 ;;
        --log-file) need_value "$@"; log_file="$2"; shift 2 ;;
        --wait) do_wait=1; shift ;;
        --wait-timeout) need_value "$@"; wait_timeout="$2"; do_wait=1; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        *) die "unknown option $1 (see --help; pass mlflow server options after --)" ;;
    esac
done

[[ "$port" =~ ^[0-9]+$ ]] && (( port >= 1 && port <= 65535 )) \
    || die "port: expected an integer in 1..65535, got '$port'"
[[ "$workers" =~ ^[0-9]+$ ]] && (( workers >= 1 )) \
    || die "workers: expected an integer >= 1, got '$workers'"
[[ "$wait_timeout" =~ ^[0-9]+$ ]] && (( wait_timeout >= 1 )) \
    || die "wait timeout: expected whole seconds >= 1, got '$wait_timeout'"
[[ -n "$host" ]] || die "host: expected an address such as 127.0.0.1, got ''"

if [[ -x "$repo/.venv/bin/mlflow" ]]; then
    mlflow_bin="$repo/.venv/bin/mlflow"
elif command -v mlflow >/dev/null 2>&1; then
    mlflow_bin="$(command -v mlflow)"
else
    die "no mlflow executable: expected $repo/.venv/bin/mlflow or mlflow on PATH (pip install mlflow)"
fi

# The store: reachable, no password in its URI, schema migrated (a new SQLite file needs
# nothing). The URI travels in the environment, never as an argument. --check creates nothing.
store="$backend"
if [[ -z "$store" && -d "$data_dir" ]]; then store="sqlite:///$(cd "$data_dir" && pwd)/mlflow.db"; fi
if [[ -z "$store" ]]; then
    (( check_only )) && echo "new SQLite store in $data_dir: the server creates it"
elif [[ "$store" != sqlite:* || -e "${store#sqlite:///}" ]] || (( check_only )); then
    python_bin="$(dirname "$mlflow_bin")/python"
    [[ -x "$python_bin" ]] || python_bin="$(head -n 1 "$mlflow_bin" | sed 's/^#! *//; s/ .*//')"
    step=prepare
    (( check_only )) && step=check
    MLFLOW_BACKEND_STORE_URI="$store" PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" \
        "$python_bin" -m tune.tracking.backend_store "$step" || die "the backend store is not usable (see above)"
fi
(( check_only )) && exit 0

mkdir -p "$data_dir"
data_dir="$(cd "$data_dir" && pwd)"
pid_file="${pid_file:-$data_dir/mlflow-server.pid}"
log_file="${log_file:-$data_dir/mlflow-server.log}"
backend="${backend:-sqlite:///$data_dir/mlflow.db}"
artifacts="${MLFLOW_ARTIFACTS_DESTINATION:-$data_dir/mlartifacts}"
mkdir -p "$(dirname "$pid_file")" "$(dirname "$log_file")"
pid_file="$(cd "$(dirname "$pid_file")" && pwd)/$(basename "$pid_file")"
log_file="$(cd "$(dirname "$log_file")" && pwd)/$(basename "$log_file")"
if [[ "$artifacts" != *://* ]]; then
    mkdir -p "$artifacts"
    artifacts="$(cd "$artifacts" && pwd)"
fi

# The address clients use: a wildcard bind is reached through loopback from here.
case "$host" in
    0.0.0.0|::|'[::]') probe_host=127.0.0.1 ;;
    *) probe_host="${host#[}"; probe_host="${probe_host%]}" ;;
esac
if [[ "$probe_host" == *:* ]]; then url="http://[$probe_host]:$port"; else url="http://$probe_host:$port"; fi


if [[ -s "$pid_file" ]]; then
    old="$(cat "$pid_file")"
    old_cmd="$( (tr '\0' ' ' <"/proc/$old/cmdline") 2>/dev/null || true)"
    if [[ "$old" =~ ^[0-9]+$ ]] && kill -0 "$old" 2>/dev/null && [[ "$old_cmd" == *mlflow* ]]; then
        die "a server started from this pid file is already running (pid $old, $pid_file); stop it with mlflow/stop.sh --pid-file $pid_file"
    fi
    rm -f "$pid_file"  # stale: that process is gone (or its PID now belongs to another)
fi
if (exec 3<>"/dev/tcp/$probe_host/$port") 2>/dev/null; then
    die "port $port on $probe_host is already in use; pick another with --port or MLFLOW_PORT"
fi

# MLflow's job runner (huey consumers for GenAI evaluation jobs) is not used by tgo and
# adds processes; it stays off unless MLFLOW_SERVER_ENABLE_JOB_EXECUTION is set.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"

# setsid: a new session and process group whose id is the server's PID, so stop.sh can
# signal the CLI, uvicorn and its workers together and nothing else.
(
    cd "$data_dir"
    # The store URIs travel as the environment variables that `mlflow server` reads for
    # --backend-store-uri and --artifacts-destination, so a password in a database URI does
    # not show up in the process list.
    export MLFLOW_BACKEND_STORE_URI="$backend" MLFLOW_ARTIFACTS_DESTINATION="$artifacts"
    exec setsid "$mlflow_bin" server --serve-artifacts \
        --host "$host" --port "$port" --workers "$workers" \
        ${extra[@]+"${extra[@]}"} </dev/null >>"$log_file" 2>&1
) &
pid=$!
echo "$pid" >"$pid_file"

echo "MLflow tracking server: $url (pid $pid)"
# user:password@ in a URI is printed as user:***@
masked() { sed -E 's#(//[^/:@]*):[^/@]*@#\1:***@#' <<<"$1"; }
echo "  backend store:  $(masked "$backend")"
echo "  artifacts:      $(masked "$artifacts") (proxied: clients use mlflow-artifacts:/)"
echo "  pid file:       $pid_file"
echo "  log file:       $log_file"
echo "  stop with:      $here/stop.sh --pid-file $pid_file"

# GET /health answers 200: curl when present, else a plain HTTP/1.0 request through bash.
healthy() {
    if command -v curl >/dev/null 2>&1; then
        curl -fsS -o /dev/null --max-time 2 "$url/health" 2>/dev/null
        return
    fi
    local status=""
    exec 3<>"/dev/tcp/$probe_host/$port" 2>/dev/null || return 1
    printf 'GET /health HTTP/1.0\r\nHost: %s:%s\r\n\r\n' "$probe_host" "$port" >&3
    read -r -t 2 status <&3 || true
    exec 3<&- 3>&-
    [[ "$status" == HTTP/*" 200"* ]]
}

if (( do_wait )); then
    deadline=$(( SECONDS + wait_timeout ))
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "serve.sh: the server exited before answering; last lines of $log_file:" >&2
            tail -n 30 "$log_file" >&2 || true
            rm -f "$pid_file"
            exit 1
        fi
        if healthy; then
            echo "MLflow tracking server is up: $url/health answered"
            break
        fi
        if (( SECONDS >= deadline )); then
            echo "serve.sh: $url/health did not answer within ${wait_timeout}s (server pid $pid still running; see $log_file, stop it with mlflow/stop.sh)" >&2
            exit 1
        fi
        sleep 0.5
    done
fi
