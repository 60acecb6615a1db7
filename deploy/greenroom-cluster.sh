#!/usr/bin/env bash
# Start N Greenroom workers and HAProxy in front of them (deploy/README.md).
#
#   deploy/greenroom-cluster.sh --enable-modules=talkinghead,tts,classify
#
# Every argument goes to each worker's server.py. Settings (environment):
#   GREENROOM_WORKERS    how many workers (default: one per GPU with GREENROOM_GPUS=1, else 2)
#   GREENROOM_GPUS=1     one worker per GPU that nvidia-smi lists, worker N on --cuda --cuda-device cuda:N-1
#   GREENROOM_FRONT      the address clients use (default 127.0.0.1:5100; 0.0.0.0:5100 for the network)
#   GREENROOM_BASE_PORT  worker N listens on BASE_PORT+N on 127.0.0.1 (default 5100)
#   GREENROOM_DRAIN_S    the workers' --drain-timeout (default 30)
#   GREENROOM_DATA_DIR   the data folder every worker shares (characters, emotion sets), e.g. on NFS
#   GREENROOM_RUN_DIR    where the rendered haproxy.cfg and the workers' logs go (default ./run)
#   PYTHON               the interpreter (default .venv/bin/python of this checkout)
#   HAPROXY              the haproxy program (default: from PATH, else /usr/sbin/haproxy)
# SIGTERM or Ctrl-C drains every worker (open feeds keep running up to GREENROOM_DRAIN_S), then stops
# HAProxy. A worker that exits is taken out by HAProxy's health check; this script keeps the rest running.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
FRONT=${GREENROOM_FRONT:-127.0.0.1:5100}
BASE_PORT=${GREENROOM_BASE_PORT:-5100}
DRAIN_S=${GREENROOM_DRAIN_S:-30}
RUN_DIR=${GREENROOM_RUN_DIR:-$PWD/run}
GPUS=0
if [ "${GREENROOM_GPUS:-0}" = 1 ]; then
    GPUS=$(nvidia-smi -L | grep -c '^GPU')
fi
WORKERS=${GREENROOM_WORKERS:-$([ "$GPUS" -gt 0 ] && echo "$GPUS" || echo 2)}
HAPROXY=${HAPROXY:-$(command -v haproxy || echo /usr/sbin/haproxy)}  # Debian puts it in /usr/sbin
[ -x "$HAPROXY" ] || { echo "haproxy is missing: sudo apt-get install haproxy" >&2; exit 2; }
mkdir -p "$RUN_DIR"
[ -n "${GREENROOM_DATA_DIR:-}" ] && mkdir -p "$GREENROOM_DATA_DIR"

# deploy/haproxy.cfg for $WORKERS workers: the 'server w1' line once per worker, the front's own address.
awk -v n="$WORKERS" -v base="$BASE_PORT" -v front="$FRONT" '
    /^ *bind / { sub(/bind .*/, "bind " front) }
    /^ *server w1 / { for (i = 1; i <= n; i++) { line = $0; sub(/w1 [^ ]+/, "w" i " 127.0.0.1:" base + i, line); print line }; next }
    /^ *server w[0-9]+ / { next }
    { print }' "$ROOT/deploy/haproxy.cfg" > "$RUN_DIR/haproxy.cfg"
"$HAPROXY" -c -q -f "$RUN_DIR/haproxy.cfg"

pids=()
haproxy_pid=
stop() {
    trap '' TERM INT
    echo "stopping: draining $WORKERS workers (up to ${DRAIN_S} s)"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
    if [ -n "$haproxy_pid" ]; then
        kill -TERM "$haproxy_pid" 2>/dev/null || true
        wait "$haproxy_pid" 2>/dev/null || true
    fi
    exit 0
}
trap stop TERM INT
for i in $(seq 1 "$WORKERS"); do
    device=()
    [ "$GPUS" -gt 0 ] && device=(--cuda --cuda-device "cuda:$(( (i - 1) % GPUS ))")
    "$PYTHON" "$ROOT/server.py" --port $((BASE_PORT + i)) --worker-id "w$i" --drain-timeout "$DRAIN_S" \
        ${device[@]+"${device[@]}"} "$@" >"$RUN_DIR/w$i.log" 2>&1 &
    pids+=($!)
    echo "$!" >"$RUN_DIR/w$i.pid"
    echo "worker w$i: http://127.0.0.1:$((BASE_PORT + i)) (pid $!, log $RUN_DIR/w$i.log)"
done
"$HAPROXY" -db -f "$RUN_DIR/haproxy.cfg" &
haproxy_pid=$!
echo "$haproxy_pid" >"$RUN_DIR/haproxy.pid"
echo "Greenroom: http://$FRONT -> $WORKERS workers (HAProxy pid $haproxy_pid)"
wait "$haproxy_pid" || true
echo "HAProxy exited; stopping the workers" >&2
stop
