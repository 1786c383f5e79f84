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

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}
usage_die() {
    log "ERROR: $*"
    exit 2
}

# ---------------------------------------------------------------- arguments
is_uint() { [[ "$1" =~ ^[0-9]{1,6}$ ]]; }
for v in ROUNDS DURATION WARMUP CLIENTS OUTSTANDING MERIDIAN_PORT GDNSD_PORT; do
    is_uint "${!v}" || usage_die "$v must be a non-negative integer (got '${!v}')"
    printf -v "$v" '%d' "$((10#${!v}))" # strip leading zeros (no octal surprises)
done
((ROUNDS >= 1 && ROUNDS <= 100)) || usage_die "ROUNDS must be an integer 1..100 (got '$ROUNDS')"
((DURATION >= 1 && DURATION <= 3600)) || usage_die "DURATION must be an integer 1..3600 seconds (got '$DURATION')"
((WARMUP <= 600)) || usage_die "WARMUP must be an integer 0..600 seconds (got '$WARMUP')"
((CLIENTS >= 1 && CLIENTS <= 256)) || usage_die "CLIENTS must be an integer 1..256 (got '$CLIENTS')"
((OUTSTANDING >= 1 && OUTSTANDING <= 65535)) || usage_die "OUTSTANDING must be an integer 1..65535 (got '$OUTSTANDING')"
for p in "$MERIDIAN_PORT" "$GDNSD_PORT"; do
    ((p >= 1024 && p <= 65535)) || usage_die "ports must be integers 1024..65535 (got '$p')"
done
[[ "$MERIDIAN_PORT" != "$GDNSD_PORT" ]] || usage_die "MERIDIAN_PORT and GDNSD_PORT must differ"
[[ -f "$ZONE_FILE" ]] || usage_die "zone file not found: $ZONE_FILE"
[[ -f "$QUERY_FILE" ]] || usage_die "query file not found: $QUERY_FILE"

# ---------------------------------------------------------------- tools
missing_pkgs=()
command -v gdnsd >/dev/null 2>&1 || missing_pkgs+=(gdnsd)
command -v dnsperf >/dev/null 2>&1 || missing_pkgs+=(dnsperf)
command -v dig >/dev/null 2>&1 || missing_pkgs+=(bind9-dnsutils)
if ((${#missing_pkgs[@]} > 0)); then
    log "ERROR: missing required tools. Install them with:"
    log "    apt-get update && apt-get install -y ${missing_pkgs[*]}"
    exit 2
fi
if [[ -z "${MERIDIAN_BIN:-}" ]] && ! command -v cargo >/dev/null 2>&1; then
    usage_die "cargo not found: install Rust (https://rustup.rs) or set MERIDIAN_BIN=/path/to/meridian"
fi

# ---------------------------------------------------------------- temp dir + cleanup
tmp="$(mktemp -d "${TMPDIR:-/tmp}/meridian-vs-gdnsd.XXXXXX")"
meridian_pid=""
gdnsd_pid=""
dnsperf_pid=""

stop_pid() { # stop_pid PID NAME: TERM, wait up to ~3 s, then KILL
    local pid="$1" name="$2" i
    [[ -n "$pid" ]] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) did not exit after SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    set +e
    stop_pid "$dnsperf_pid" dnsperf
    stop_pid "$meridian_pid" meridian
    stop_pid "$gdnsd_pid" gdnsd
    if ((rc != 0 && rc < 128)); then # not for Ctrl-C / SIGTERM
        for f in "$tmp/meridian.log" "$tmp/gdnsd.log"; do
            if [[ -s "$f" ]]; then
                log "---- last lines of $(basename "$f") ----"
                tail -n 20 "$f" >&2
            fi
        done
    fi
    if [[ "${KEEP_TMP:-0}" == 1 ]]; then
        log "keeping temporary directory $tmp"
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---------------------------------------------------------------- helpers
port_in_use() { # true if something listens on UDP or TCP $1
    command -v ss >/dev/null 2>&1 || return 1
    [[ -n "$(ss -Hlnut "( sport = :$1 )" 2>/dev/null)" ]]
}

wait_ready() { # wait_ready NAME PID PORT LOG: poll SOA for ~10 s (wall clock)
    local name="$1" pid="$2" port="$3" logf="$4" deadline=$((SECONDS + 10))
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || die "$name exited during startup (log: $(basename "$logf"))"
        # dig prints errors to stdout too, so require an actual SOA rdata line.
        if dig +short +time=1 +tries=1 @"$ADDR" -p "$port" SOA "$ZONE_NAME" 2>/dev/null |
            grep -Eq '^[^;[:space:]]+ [^[:space:]]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+$'; then
            log "$name answers on $ADDR:$port"
            return 0
        fi
        sleep 0.25
    done
    die "$name did not answer SOA $ZONE_NAME on $ADDR:$port within ~10 s"
}

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

cpu_ticks() { # utime+stime (all threads) of PID, in clock ticks
    awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

median() { # median of the arguments
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print 0; exit }
        if (NR % 2) printf "%.2f\n", v[(NR + 1) / 2]
        else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

CLK_TCK="$(getconf CLK_TCK 2>/dev/null || echo 100)"

# run_dnsperf NAME PID PORT SECONDS OUTFILE
# Sets globals R_QPS (rounded), R_LOST, R_CPU (server CPU microseconds per
# completed query). Runs in the main shell (no subshell) so `die` aborts the
# script and the trap can stop dnsperf.
run_dnsperf() {
    local name="$1" pid="$2" port="$3" secs="$4" out="$5" t0 t1 rc=0 qps completed lost
    R_QPS="" R_LOST="" R_CPU=""
    kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) is no longer running"
    t0="$(cpu_ticks "$pid")"
    dnsperf -s "$ADDR" -p "$port" -d "$QUERY_FILE" -l "$secs" \
        -c "$CLIENTS" -q "$OUTSTANDING" -T 1 -t 2 >"$out" 2>&1 &
    dnsperf_pid=$!
    wait "$dnsperf_pid" || rc=$?
    dnsperf_pid=""
    t1="$(cpu_ticks "$pid")"
    kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) died during the dnsperf run"
    ((rc == 0)) || { cat "$out" >&2; die "dnsperf against $name failed (exit $rc)"; }
    qps="$(awk '/Queries per second:/ { print $4; exit }' "$out")"
    completed="$(awk '/Queries completed:/ { print $3; exit }' "$out")"
    lost="$(awk '/Queries lost:/ { print $3; exit }' "$out")"
    [[ -n "$qps" && -n "$completed" && -n "$lost" ]] || { cat "$out" >&2; die "could not parse dnsperf output for $name"; }
    R_QPS="$(printf '%.0f' "$qps")"
    R_LOST="$lost"
    R_CPU="$(awk -v d="$((t1 - t0))" -v hz="$CLK_TCK" -v n="$completed" \
        'BEGIN { if (n > 0) printf "%.2f", d / hz * 1e6 / n; else print "n/a" }')"
}

# ---------------------------------------------------------------- meridian binary
if [[ -n "${MERIDIAN_BIN:-}" ]]; then
    [[ -x "$MERIDIAN_BIN" ]] || usage_die "MERIDIAN_BIN=$MERIDIAN_BIN is not an executable file"
else
    log "building meridian: cargo build --release (in $REPO_ROOT)"
    (cd "$REPO_ROOT" && cargo build --release) || die "cargo build --release failed"
    MERIDIAN_BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/meridian"
    [[ -x "$MERIDIAN_BIN" ]] || die "build succeeded but $MERIDIAN_BIN does not exist"
fi

for p in "$MERIDIAN_PORT" "$GDNSD_PORT"; do
    if port_in_use "$p"; then
        usage_die "port $p is already in use on this host; pick another with MERIDIAN_PORT/GDNSD_PORT"
    fi
done

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
cat >"$gdir/config" <<EOF
options => {
  listen => [ "$ADDR:$GDNSD_PORT" ]
  run_dir => "$gdir/run"
  state_dir => "$gdir/state"
}
EOF
gdnsd -c "$gdir" checkconf >"$tmp/gdnsd-checkconf.log" 2>&1 ||
    { cat "$tmp/gdnsd-checkconf.log" >&2; die "gdnsd checkconf failed"; }

# ---------------------------------------------------------------- start servers
log "starting meridian: $MERIDIAN_BIN serve --config $tmp/meridian.toml"
"$MERIDIAN_BIN" serve --config "$tmp/meridian.toml" >"$tmp/meridian.log" 2>&1 &
meridian_pid=$!
log "starting gdnsd: gdnsd -c $gdir start"
env -u NOTIFY_SOCKET gdnsd -c "$gdir" start >"$tmp/gdnsd.log" 2>&1 &
gdnsd_pid=$!

wait_ready meridian "$meridian_pid" "$MERIDIAN_PORT" "$tmp/meridian.log"
wait_ready gdnsd "$gdnsd_pid" "$GDNSD_PORT" "$tmp/gdnsd.log"

gdnsd_threads="$(sed -n 's/.*DNS listener threads (\(.*\)) configured.*/\1/p' "$tmp/gdnsd.log" | head -n1)"
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
        {
            echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
            echo "!! WARNING: meridian and gdnsd answer '$qname $qtype' differently"
            echo "!! meridian:"
            printf '!!   %s\n' "${m_lines[@]}"
            echo "!! gdnsd:"
            printf '!!   %s\n' "${g_lines[@]}"
            echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        } >&2
    fi
done
if ((mismatch)); then
    log "WARNING: answers differ; the QPS comparison below may not be apples to apples"
fi

# ---------------------------------------------------------------- measure
if ((WARMUP > 0)); then
    log "warm-up: ${WARMUP}s per server (not measured)"
    run_dnsperf meridian "$meridian_pid" "$MERIDIAN_PORT" "$WARMUP" "$tmp/warmup-meridian.out"
    run_dnsperf gdnsd "$gdnsd_pid" "$GDNSD_PORT" "$WARMUP" "$tmp/warmup-gdnsd.out"
fi

declare -a m_qps=() g_qps=() m_lost=() g_lost=() m_cpu=() g_cpu=()
for ((r = 1; r <= ROUNDS; r++)); do
    # Alternate which server goes first to cancel ordering/thermal effects.
    if ((r % 2)); then order=(meridian gdnsd); else order=(gdnsd meridian); fi
    for s in "${order[@]}"; do
        log "round $r/$ROUNDS: dnsperf -> $s for ${DURATION}s"
        if [[ "$s" == meridian ]]; then
            run_dnsperf meridian "$meridian_pid" "$MERIDIAN_PORT" "$DURATION" "$tmp/r$r-meridian.out"
            m_qps+=("$R_QPS") m_lost+=("$R_LOST") m_cpu+=("$R_CPU")
        else
            run_dnsperf gdnsd "$gdnsd_pid" "$GDNSD_PORT" "$DURATION" "$tmp/r$r-gdnsd.out"
            g_qps+=("$R_QPS") g_lost+=("$R_LOST") g_cpu+=("$R_CPU")
        fi
    done
done
((${#m_qps[@]} == ROUNDS && ${#g_qps[@]} == ROUNDS)) || die "missing results (a dnsperf run failed)"

m_med="$(median "${m_qps[@]}")"
g_med="$(median "${g_qps[@]}")"
ratio="$(awk -v m="$m_med" -v g="$g_med" 'BEGIN { if (g > 0) printf "%.2f", m / g; else print "nan" }')"
m_cpu_med="$(median "${m_cpu[@]}")"
g_cpu_med="$(median "${g_cpu[@]}")"

# ---------------------------------------------------------------- report
echo
echo "Meridian vs gdnsd, UDP, zone $ZONE_NAME, $(grep -cve '^[[:space:]]*$' "$QUERY_FILE") distinct queries"
echo "  host:     $ncpu CPU(s), servers and dnsperf share them"
echo "  dnsperf:  $(dnsperf -h 2>&1 | sed -n 's/^Version //p' | head -n1) -c $CLIENTS -q $OUTSTANDING -T 1 -l $DURATION, $ROUNDS round(s) per server, alternating"
echo "  meridian: $MERIDIAN_BIN on $ADDR:$MERIDIAN_PORT (default workers = core count = $ncpu)"
echo "  gdnsd:    $(gdnsd -h 2>&1 | sed -n 's/^gdnsd version //p' | head -n1) on $ADDR:$GDNSD_PORT (default threads: ${gdnsd_threads:-unknown})"
echo
printf '%-8s | %12s %8s %9s | %12s %8s %9s\n' round "meridian_qps" lost "cpu_us/q" "gdnsd_qps" lost "cpu_us/q"
printf '%s\n' "---------+-------------------------------+-------------------------------"
for ((i = 0; i < ROUNDS; i++)); do
    printf '%-8s | %12s %8s %9s | %12s %8s %9s\n' "$((i + 1))" \
        "${m_qps[i]}" "${m_lost[i]}" "${m_cpu[i]}" "${g_qps[i]}" "${g_lost[i]}" "${g_cpu[i]}"
done
printf '%s\n' "---------+-------------------------------+-------------------------------"
printf '%-8s | %12.0f %8s %9s | %12.0f %8s %9s\n' median "$m_med" "" "$m_cpu_med" "$g_med" "" "$g_cpu_med"
echo
echo "ratio median(meridian)/median(gdnsd) = $ratio   (>1 means meridian is faster)"
echo "cpu_us/q = server CPU time (all threads) per completed query; lower is better."
if ((mismatch)); then
    echo "WARNING: the servers' answers differed in the sanity check (see above)."
fi
printf 'RESULT udp meridian_qps=%.0f gdnsd_qps=%.0f ratio=%s\n' "$m_med" "$g_med" "$ratio"
