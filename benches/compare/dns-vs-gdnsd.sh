#!/usr/bin/env bash
# Compare Meridian's authoritative UDP DNS throughput against gdnsd 3.x.
#
# Both servers load the same static zone (zones/bench.example.zone), listen on
# 127.0.0.1 only, and are driven alternately by dnsperf with the same query
# file (queries/static.txt) in one run. Prints per-round QPS, the median QPS of
# each server, the ratio median(meridian)/median(gdnsd), and a final line:
#   RESULT udp meridian_qps=... gdnsd_qps=... ratio=...
#
# Environment:
#   ROUNDS        rounds per server (default 3)
#   DURATION      seconds per dnsperf run (default 10)
#   WARMUP        seconds of unmeasured warm-up per server (default 2, 0 = off)
#   MERIDIAN_BIN  use this meridian binary instead of `cargo build --release`
#   MERIDIAN_PORT UDP/TCP port for meridian (default 15353)
#   GDNSD_PORT    UDP/TCP port for gdnsd    (default 15354)
#   CLIENTS       dnsperf -c (default 8)
#   OUTSTANDING   dnsperf -q (default 200)
#   KEEP_TMP=1    keep the temporary directory (configs, logs) for inspection
#
# Exit codes: 0 ok, 1 failure, 2 missing tools / bad arguments.
set -euo pipefail

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
MERIDIAN_PORT="${MERIDIAN_PORT:-15353}"
GDNSD_PORT="${GDNSD_PORT:-15354}"
# dnsperf load shape. The box has 2 cores shared by dnsperf and the server
# under test, so the client must be cheap and identical for both servers:
#  -T 1  one dnsperf worker (it already uses ~1 core: separate send/receive
#        threads); more threads only steal CPU from the server.
#  -c 8  8 source sockets, so the kernel's SO_REUSEPORT hashing spreads the
#        load over all of each server's UDP sockets/threads (with -c 1 or 2 one
#        server thread can end up with all the traffic). QPS plateaus from ~4.
#  -q 200 outstanding queries: loopback RTT is ~0.1-0.2 ms, so by Little's law
#        a few dozen in flight keep the server busy; 200 leaves ample headroom
#        without overflowing default socket buffers (-q 500 produced kernel
#        UDP receive-buffer drops, i.e. "lost" queries that measure the buffer,
#        not the server).
CLIENTS="${CLIENTS:-8}"
OUTSTANDING="${OUTSTANDING:-200}"
ADDR=127.0.0.1 # loopback only, never anything else
ZONE_NAME=bench.example

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
ZONE_FILE="$SCRIPT_DIR/zones/$ZONE_NAME.zone"
QUERY_FILE="$SCRIPT_DIR/queries/static.txt"

# shellcheck source=SCRIPTDIR/lib.sh disable=SC1091
. "$SCRIPT_DIR/lib.sh"

# ---------------------------------------------------------------- arguments
require_uints 6 ROUNDS DURATION WARMUP CLIENTS OUTSTANDING MERIDIAN_PORT GDNSD_PORT
require_run_shape
require_dnsperf_load
require_ports MERIDIAN_PORT GDNSD_PORT
[[ -f "$ZONE_FILE" ]] || usage_die "zone file not found: $ZONE_FILE"
[[ -f "$QUERY_FILE" ]] || usage_die "query file not found: $QUERY_FILE"

# ---------------------------------------------------------------- tools
need_tool gdnsd gdnsd
need_tool dnsperf dnsperf
need_tool dig bind9-dnsutils
exit_if_missing tools
meridian_precheck

# ---------------------------------------------------------------- temp dir + cleanup
meridian_pid=""
gdnsd_pid=""
stop_children() {
    stop_pid "$dnsperf_pid" dnsperf
    stop_pid "$meridian_pid" meridian
    stop_pid "$gdnsd_pid" gdnsd
}
FAILURE_LOGS=(meridian.log gdnsd.log)
make_tmp meridian-vs-gdnsd

# ---------------------------------------------------------------- helpers
# Normalised answer for comparison: rcode + answer section, sorted (servers
# may rotate RRset order, e.g. gdnsd round-robins the A records of www).
answer_of() { # answer_of PORT NAME TYPE
    local out rcode
    out="$(dig +time=2 +tries=1 +norecurse @"$ADDR" -p "$1" "$2" "$3" 2>&1)" || true
    rcode="$(sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$out" | head -n1)"
    printf 'rcode=%s\n' "${rcode:-NO-RESPONSE}"
    { dig +time=2 +tries=1 +norecurse +noall +answer @"$ADDR" -p "$1" "$2" "$3" 2>/dev/null || true; } |
        awk '!/^;/ { $1 = $1; print }' | sort
}

# ---------------------------------------------------------------- meridian binary
meridian_build
require_free_ports "pick another with MERIDIAN_PORT/GDNSD_PORT" "$MERIDIAN_PORT" "$GDNSD_PORT"

# ---------------------------------------------------------------- meridian setup
mkdir -p "$tmp/meridian/zones"
cp "$ZONE_FILE" "$tmp/meridian/zones/$ZONE_NAME.zone"
# zones_dir is relative to the config file's directory ($tmp).
cat >"$tmp/meridian.toml" <<EOF
[dns]
listen = ["$ADDR:$MERIDIAN_PORT"]
zones_dir = "meridian/zones"
max_udp_payload = 1232
EOF

# ---------------------------------------------------------------- gdnsd setup
# gdnsd 3.x has no privilege handling of its own (no username option): it runs
# as whoever starts it. run_dir (control socket, lock, cookie key) and
# state_dir default to /run/gdnsd and /var/lib/gdnsd, so both are pointed into
# $tmp; nothing outside $tmp is touched. Thread counts are left at defaults.
gdir="$tmp/gdnsd"
mkdir -p "$gdir/zones" "$gdir/run" "$gdir/state"
cp "$ZONE_FILE" "$gdir/zones/$ZONE_NAME"
gdnsd_options "$ADDR:$GDNSD_PORT" "$gdir" >"$gdir/config"
gdnsd_checkconf "$gdir" "$tmp/gdnsd-checkconf.log"

# ---------------------------------------------------------------- start servers
start_meridian "$tmp/meridian.toml"
start_gdnsd "$gdir"

wait_soa dig "$ZONE_NAME" meridian "$meridian_pid" "$MERIDIAN_PORT" "$tmp/meridian.log"
wait_soa dig "$ZONE_NAME" gdnsd "$gdnsd_pid" "$GDNSD_PORT" "$tmp/gdnsd.log"

gdnsd_threads="$(gdnsd_threads "$tmp/gdnsd.log")"
ncpu="$(nproc 2>/dev/null || echo '?')"

# ---------------------------------------------------------------- sanity check
mismatch=0
for q in "www.$ZONE_NAME A" "alias.$ZONE_NAME A" "foo.wild.$ZONE_NAME AAAA" \
    "info.$ZONE_NAME TXT" "$ZONE_NAME MX" "nonexistent.$ZONE_NAME A"; do
    read -r qname qtype <<<"$q"
    a_m="$(answer_of "$MERIDIAN_PORT" "$qname" "$qtype")"
    a_g="$(answer_of "$GDNSD_PORT" "$qname" "$qtype")"
    if [[ "$a_m" == "$a_g" ]]; then
        log "same answer: $qname $qtype"
    else
        mismatch=1
        mapfile -t m_lines <<<"$a_m"
        mapfile -t g_lines <<<"$a_g"
        warn_box "WARNING: meridian and gdnsd answer '$qname $qtype' differently" \
            "meridian:" "${m_lines[@]/#/  }" "gdnsd:" "${g_lines[@]/#/  }"
    fi
done
if ((mismatch)); then
    log "WARNING: answers differ; the QPS comparison below may not be apples to apples"
fi

# ---------------------------------------------------------------- measure
if ((WARMUP > 0)); then
    log "warm-up: ${WARMUP}s per server (not measured)"
    run_dnsperf meridian "$meridian_pid" "$MERIDIAN_PORT" "$WARMUP" "$tmp/warmup-meridian.out" -d "$QUERY_FILE"
    run_dnsperf gdnsd "$gdnsd_pid" "$GDNSD_PORT" "$WARMUP" "$tmp/warmup-gdnsd.out" -d "$QUERY_FILE"
fi

declare -a m_qps=() g_qps=() m_lost=() g_lost=() m_cpu=() g_cpu=()
for ((r = 1; r <= ROUNDS; r++)); do
    # Alternate which server goes first to cancel ordering/thermal effects.
    if ((r % 2)); then order=(meridian gdnsd); else order=(gdnsd meridian); fi
    for s in "${order[@]}"; do
        log "round $r/$ROUNDS: dnsperf -> $s for ${DURATION}s"
        if [[ "$s" == meridian ]]; then
            run_dnsperf meridian "$meridian_pid" "$MERIDIAN_PORT" "$DURATION" "$tmp/r$r-meridian.out" -d "$QUERY_FILE"
            m_qps+=("$R_QPS") m_lost+=("$R_LOST") m_cpu+=("$R_CPU")
        else
            run_dnsperf gdnsd "$gdnsd_pid" "$GDNSD_PORT" "$DURATION" "$tmp/r$r-gdnsd.out" -d "$QUERY_FILE"
            g_qps+=("$R_QPS") g_lost+=("$R_LOST") g_cpu+=("$R_CPU")
        fi
    done
done
((${#m_qps[@]} == ROUNDS && ${#g_qps[@]} == ROUNDS)) || die "missing results (a dnsperf run failed)"

m_med="$(median 2 "${m_qps[@]}")"
g_med="$(median 2 "${g_qps[@]}")"
ratio="$(ratio "$m_med" "$g_med")"

# ---------------------------------------------------------------- report
echo
echo "Meridian vs gdnsd, UDP, zone $ZONE_NAME, $(grep -cve '^[[:space:]]*$' "$QUERY_FILE") distinct queries"
echo "  host:     $ncpu CPU(s), servers and dnsperf share them"
echo "  dnsperf:  $(dnsperf_version) -c $CLIENTS -q $OUTSTANDING -T 1 -l $DURATION, $ROUNDS round(s) per server, alternating"
echo "  meridian: $MERIDIAN_BIN on $ADDR:$MERIDIAN_PORT (default workers = core count = $ncpu)"
echo "  gdnsd:    $(gdnsd_version) on $ADDR:$GDNSD_PORT (default threads: ${gdnsd_threads:-unknown})"
echo
qps_table meridian_qps m gdnsd_qps g
echo
echo "ratio median(meridian)/median(gdnsd) = $ratio   (>1 means meridian is faster)"
echo "cpu_us/q = server CPU time (all threads) per completed query; lower is better."
if ((mismatch)); then
    echo "WARNING: the servers' answers differed in the sanity check (see above)."
fi
printf 'RESULT udp meridian_qps=%.0f gdnsd_qps=%.0f ratio=%s\n' "$m_med" "$g_med" "$ratio"
