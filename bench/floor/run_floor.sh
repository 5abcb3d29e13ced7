#!/usr/bin/env bash
# Benchmark floor: what two processes that only pass SIP datagrams over one UDP hop cost
# in CPU per REGISTER flow and per call, measured with the shared SIPp ladders.
#
#   FLOOR=pair   (default)  SIPp -> floor_lb 127.0.0.1:5060 (public) / 127.0.0.1:5063 (internal)
#                                -> ideal_sip 127.0.0.1:5062 (-u 127.0.0.1:5063, i.e. back through
#                                   floor_lb) -> SIPp UAS 127.0.0.1:$UAS_PORT
#   FLOOR=single            SIPp -> ideal_sip 127.0.0.1:5060 (-u SIPp UAS): the one-process floor
#
# Everything runs inside a private network namespace (floor<PID>, own loopback, deleted on
# exit), so the fixed ports cannot collide with other tenants. Needs root, gcc, sipp
# (apt-get install sip-tester), python3, iproute2.
#
#   bash bench/floor/run_floor.sh
#
# Env knobs (passed to the shared harness run_scenarios.sh):
#   REG_RATES 2000,4000,8000   CALL_RATES 500,1000,2000   STEP_SECS 8   REFINE 0
#   N_USERS 200   HOLD_MS 1000   SCENARIOS "reg call"   UAS_PORT 5070
# Own knobs:
#   FLOOR        pair | single
#   SHARED_BENCH path of shared/bench (default: /work/shared/bench, else ../shared/bench
#                relative to the checkout)
#   NICE         0     nice value of the servers and SIPp (e.g. -10)
#   MAX_SECS     1800  hard lifetime of the servers (-t) and of the ladders (timeout)
#   OUT          bench/floor/results/floor-$FLOOR-<UTC stamp>.txt
#   KEEP_WORK    0     1 = keep the temp dir (binaries, raw SIPp stats, logs, JSONL)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
FLOOR=${FLOOR:-pair}
case "$FLOOR" in pair|single) ;; *) echo "FLOOR must be pair or single" >&2; exit 2;; esac

# ---------------------------------------------------------------- locate the shared harness
if [ -z "${SHARED_BENCH:-}" ]; then
  for c in /work/shared/bench "$HERE/../../../shared/bench"; do
    if [ -f "$c/ideal/ideal_sip.c" ]; then SHARED_BENCH=$(cd "$c" && pwd); break; fi
  done
fi
if [ -z "${SHARED_BENCH:-}" ] || [ ! -f "$SHARED_BENCH/ideal/ideal_sip.c" ]; then
  echo "run_floor.sh: shared/bench/ideal/ideal_sip.c not found (looked in /work/shared/bench and" >&2
  echo "  ../shared/bench next to the checkout); set SHARED_BENCH=/path/to/shared/bench" >&2
  exit 2
fi
[ -f "$SHARED_BENCH/run_scenarios.sh" ] || { echo "no run_scenarios.sh in $SHARED_BENCH" >&2; exit 2; }

[ "$(id -u)" = 0 ] || { echo "run_floor.sh needs root (network namespace)" >&2; exit 2; }
for b in gcc sipp python3 ip ss timeout; do
  command -v $b >/dev/null || { echo "missing $b (apt-get install -y gcc sip-tester python3 iproute2)" >&2; exit 2; }
done

export REG_RATES=${REG_RATES:-2000,4000,8000} CALL_RATES=${CALL_RATES:-500,1000,2000}
export STEP_SECS=${STEP_SECS:-8} REFINE=${REFINE:-0} N_USERS=${N_USERS:-200} HOLD_MS=${HOLD_MS:-1000}
export SCENARIOS=${SCENARIOS:-"reg call"} UAS_PORT=${UAS_PORT:-5070}
NICE=${NICE:-0}
MAX_SECS=${MAX_SECS:-1800}
DOMAIN=bench.local
IP=127.0.0.1
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$HERE/results/floor-$FLOOR-$STAMP.txt}
mkdir -p "$(dirname "$OUT")"

WORK=$(mktemp -d "/tmp/floor-$FLOOR-$STAMP.XXXX")
NS=floor$$
PIDS=""
cleanup() {
  local p
  for p in $PIDS; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 30); do
    local alive=0
    for p in $PIDS; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done
  # anything else still inside OUR namespace was started by this script (SIPp of the harness)
  if ip netns list 2>/dev/null | grep -qw "$NS"; then
    for p in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
  fi
  [ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- build
gcc -O2 -Wall -Wextra -o "$WORK/ideal_sip" "$SHARED_BENCH/ideal/ideal_sip.c"
gcc -O2 -Wall -Wextra -o "$WORK/floor_lb" "$HERE/floor_lb.c"

# ---------------------------------------------------------------- namespace + servers
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
# `ip netns exec` execs the command (no fork), so $! is the server's own PID
start() {   # logfile cmd...
  local log=$1; shift
  nice -n "$NICE" ip netns exec "$NS" "$@" > "$log" 2>&1 &
  PIDS="$PIDS $!"
  LAST=$!
}
if [ "$FLOOR" = pair ]; then
  start "$WORK/ideal_sip.log" "$WORK/ideal_sip" -l $IP:5062 -u $IP:5063 -r $DOMAIN -t "$MAX_SECS"
  RPID=$LAST
  start "$WORK/floor_lb.log" "$WORK/floor_lb" -l $IP:5060 -i $IP:5063 -p $IP:5062 -u $IP:$UAS_PORT -t "$MAX_SECS"
  LPID=$LAST
  SERVER_PIDS="$LPID $RPID"
  SHAPE="SIPp UAC -> floor_lb $IP:5060 | floor_lb $IP:5063 <-> ideal_sip $IP:5062 (-u $IP:5063) | floor_lb $IP:5060 -> SIPp UAS $IP:$UAS_PORT"
else
  start "$WORK/ideal_sip.log" "$WORK/ideal_sip" -l $IP:5060 -u $IP:$UAS_PORT -r $DOMAIN -t "$MAX_SECS"
  RPID=$LAST
  SERVER_PIDS="$RPID"
  SHAPE="SIPp UAC -> ideal_sip $IP:5060 (-u $IP:$UAS_PORT) -> SIPp UAS $IP:$UAS_PORT"
fi
sleep 0.3
for p in $SERVER_PIDS; do
  if ! kill -0 "$p" 2>/dev/null; then
    echo "a server did not start:" >&2; cat "$WORK"/*.log >&2; exit 1
  fi
done
echo "floor $FLOOR: server PIDs $SERVER_PIDS in netns $NS; $SHAPE"

HDR=$WORK/header.txt
{
  echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine:  $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -r); $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*' | head -1); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  if [ "$FLOOR" = pair ]; then
    echo "servers:  floor_lb (bench/floor/floor_lb.c) + ideal_sip (shared/bench/ideal/ideal_sip.c), SERVER_PID = \"$SERVER_PIDS\" (LB, responder)"
  else
    echo "servers:  ideal_sip alone (shared/bench/ideal/ideal_sip.c), SERVER_PID = $SERVER_PIDS"
  fi
  echo "path:     $SHAPE"
  echo "setup:    own netns, REG_RATES=$REG_RATES CALL_RATES=$CALL_RATES STEP_SECS=$STEP_SECS REFINE=$REFINE N_USERS=$N_USERS HOLD_MS=$HOLD_MS NICE=$NICE"
} > "$HDR"

# ---------------------------------------------------------------- ladders (shared harness)
set +e
timeout -k 20 "$MAX_SECS" nice -n "$NICE" ip netns exec "$NS" env SERVER_PID="$SERVER_PIDS" LOCAL_IP=$IP \
  WORKDIR="$WORK/sip" RESULTS_JSONL="$WORK/sip/results.jsonl" \
  bash "$SHARED_BENCH/run_scenarios.sh" $IP 5060 $DOMAIN
RC=$?
set -e
for p in $SERVER_PIDS; do
  kill -0 "$p" 2>/dev/null || echo "NOTE: server PID $p was gone before the end of the ladders" >> "$HDR"
done
# stop the servers so they print their counters
for p in $SERVER_PIDS; do kill "$p" 2>/dev/null || true; done
for p in $SERVER_PIDS; do
  for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
done

# ---------------------------------------------------------------- report
{
  if [ -s "$WORK/sip/results.jsonl" ]; then
    python3 "$SHARED_BENCH/tools/summarize.py" "$WORK/sip/results.jsonl" \
      --title "Benchmark floor ($FLOOR): do-nothing SIP servers under the shared SIPp ladders" \
      --header-file "$HDR"
    echo
    python3 - "$WORK/sip/results.jsonl" "$FLOOR" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
pair = sys.argv[2] == "pair"
names = {"reg": "REGISTER flow (401 + authenticated REGISTER)",
         "call": "call (407 + INVITE/180/200/ACK + BYE/200)"}
print("== server CPU ms per operation (all server processes)" + (" = floor_lb + ideal_sip" if pair else ""))
print(f"{'scenario':<9}{'rate/s':>8}{'ms/op':>9}" + (f"{'LB':>9}{'resp':>9}" if pair else "")
      + f"{'srv cores':>11}{'gen':>6}{'other':>7}{'failed':>8}{'retr%':>7}  ok")
for kind in ("reg", "call"):
    for r in sorted((x for x in rows if x["scenario"] == kind), key=lambda x: x["rate"]):
        each = r.get("server_cpu_ms_per_call_each") or []
        split = (f"{each[0]:>9.4f}{each[1]:>9.4f}" if len(each) == 2 else f"{'-':>9}{'-':>9}") if pair else ""
        print(f"{kind:<9}{r['rate']:>8}{r['server_cpu_ms_per_call']:>9.4f}{split}{r['server_cores']:>11.2f}"
              f"{r['loadgen_cores']:>6.2f}{r['other_cores']:>7.2f}{r['failed'] + r['uas_failed']:>8}{r['retrans_pct']:>7.2f}  {'yes' if r['sustained'] else 'NO'}")
for kind in ("reg", "call"):
    if any(x["scenario"] == kind for x in rows):
        print(f"  {kind}: {names[kind]}")
print("  gen = SIPp cores, other = cores used by anything else on the box (other tenants: noise)")
print("  CPU = utime+stime of the server processes (kernel UDP send/receive work done in their")
print("  syscalls included; /proc tick resolution 10 ms, so short steps carry about +-0.001 ms/op)")
PY
  else
    cat "$HDR"
    echo "no results (run_scenarios.sh exit $RC); see the output above"
  fi
  echo
  echo "server counters:"
  [ "$FLOOR" = pair ] && echo "  $(tail -1 "$WORK/floor_lb.log")"
  echo "  $(tail -1 "$WORK/ideal_sip.log")"
  echo "ladders exit code: $RC; load after: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$OUT"
cat "$OUT"
[ "${KEEP_WORK:-0}" = 1 ] && echo "work dir kept: $WORK"
echo "floor table written to $OUT"
exit $RC
