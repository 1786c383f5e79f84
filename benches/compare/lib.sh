# shellcheck shell=bash
# Shared start-up, clean-up and measuring code of the side-by-side scripts in
# this folder. Sourced, not executed: each script sets `set -euo pipefail`,
# SCRIPT_DIR and REPO_ROOT, then sources this file.
#
# What a script provides, where it uses the matching helper:
#   stop_children  a function that stops the script's processes (cleanup);
#   FAILURE_LOGS   logs to show when the script fails: paths relative to $tmp,
#                  globs allowed (cleanup);
#   ADDR           the loopback address the servers listen on (wait_soa,
#                  run_dnsperf);
#   CLIENTS, OUTSTANDING  dnsperf -c and -q (run_dnsperf).
#
# What it sets for the script: tmp (make_tmp), missing_pkgs (need_tool),
# MERIDIAN_BIN (meridian_build), meridian_pid (start_meridian), gdnsd_pid
# (start_gdnsd), dnsperf_pid and R_* (run_dnsperf), D_* (parse_dnsperf),
# CHILD_TICKS (children_ticks), busy_warnings (check_quiet), CLK_TCK.

# shellcheck disable=SC2034 # the variables set here are the caller's to read

# ---------------------------------------------------------------- messages
# log MESSAGE...: a time-stamped line on stderr.
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# die MESSAGE...: logs the error and exits 1 (a failure while running).
die() {
    log "ERROR: $*"
    exit 1
}

# usage_die MESSAGE...: logs the error and exits 2 (bad arguments, missing tools).
usage_die() {
    log "ERROR: $*"
    exit 2
}

# ---------------------------------------------------------------- arguments
# require_uints DIGITS VAR...: each VAR must hold a non-negative integer of at
# most DIGITS digits; leading zeros are stripped (no octal surprises).
require_uints() {
    local re="^[0-9]{1,$1}\$" var
    shift
    for var in "$@"; do
        [[ "${!var}" =~ $re ]] || usage_die "$var must be a non-negative integer (got '${!var}')"
        printf -v "$var" '%d' "$((10#${!var}))"
    done
}

# require_range VAR MIN MAX [UNIT]: VAR (already an integer) must lie in
# MIN..MAX; UNIT ("seconds") is named in the error.
require_range() {
    local var="$1" min="$2" max="$3" unit="${4:+ $4}"
    ((${!var} >= min && ${!var} <= max)) || usage_die "$var must be an integer $min..$max$unit (got '${!var}')"
}

# require_run_shape: ROUNDS 1..100, DURATION 1..3600 s and WARMUP 0..600 s,
# the settings every load script shares (already checked by require_uints).
require_run_shape() {
    require_range ROUNDS 1 100
    require_range DURATION 1 3600 seconds
    require_range WARMUP 0 600 seconds
}

# require_dnsperf_load: CLIENTS 1..256 and OUTSTANDING 1..65535 (dnsperf -c
# and -q, already checked by require_uints).
require_dnsperf_load() {
    require_range CLIENTS 1 256
    require_range OUTSTANDING 1 65535
}

# require_ports VAR...: the ports held by the VARs must be integers
# 1024..65535, and all different.
require_ports() {
    local var p names
    local -a values=()
    for var in "$@"; do values+=("${!var}"); done
    for p in "${values[@]}"; do
        ((p >= 1024 && p <= 65535)) || usage_die "ports must be integers 1024..65535 (got '$p')"
    done
    [[ "$(printf '%s\n' "${values[@]}" | sort -u | wc -l)" == "$#" ]] && return 0
    if (($# == 2)); then
        usage_die "$1 and $2 must differ"
    fi
    names="$(printf '%s, ' "${@:1:$#-1}")"
    usage_die "${names%, } and ${!#} must all differ"
}

# ---------------------------------------------------------------- tools
missing_pkgs=()

# need_tool CMD PKG: records the Debian package PKG when CMD is not on PATH.
need_tool() { command -v "$1" >/dev/null 2>&1 || missing_pkgs+=("$2"); }

# exit_if_missing WHAT [NOTE...]: when packages were recorded, prints the
# apt-get line that installs them ("missing required WHAT"), then each NOTE
# line, and exits 2.
exit_if_missing() {
    local what="$1" note
    shift
    ((${#missing_pkgs[@]} > 0)) || return 0
    log "ERROR: missing required $what. Install them with:"
    log "    apt-get update && apt-get install -y ${missing_pkgs[*]}"
    for note in "$@"; do log "$note"; done
    exit 2
}

# meridian_precheck: exits 2 when MERIDIAN_BIN is set but not executable, or
# is unset and there is no cargo to build it.
meridian_precheck() {
    if [[ -n "${MERIDIAN_BIN:-}" ]]; then
        [[ -x "$MERIDIAN_BIN" ]] || usage_die "MERIDIAN_BIN=$MERIDIAN_BIN is not an executable file"
    elif ! command -v cargo >/dev/null 2>&1; then
        usage_die "cargo not found: install Rust (https://rustup.rs) or set MERIDIAN_BIN=/path/to/meridian"
    fi
}

# meridian_build: keeps MERIDIAN_BIN when it is set, else runs
# `cargo build --release` in REPO_ROOT and points MERIDIAN_BIN at the result.
meridian_build() {
    meridian_precheck
    [[ -z "${MERIDIAN_BIN:-}" ]] || return 0
    log "building meridian: cargo build --release (in $REPO_ROOT)"
    (cd "$REPO_ROOT" && cargo build --release) || die "cargo build --release failed"
    MERIDIAN_BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/meridian"
    [[ -x "$MERIDIAN_BIN" ]] || die "build succeeded but $MERIDIAN_BIN does not exist"
}

# ---------------------------------------------------------------- temp dir + cleanup
FAILURE_LOGS=()

# make_tmp PREFIX: creates the private directory $tmp (PREFIX.XXXXXX under
# TMPDIR or /tmp) and installs the traps: cleanup on every exit; Ctrl-C,
# SIGTERM and SIGHUP exit with 130, 143 and 129.
make_tmp() {
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")"
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}

# stop_pid PID NAME: TERM, wait up to ~3 s, then KILL. An empty PID or one
# that has already exited is left alone.
stop_pid() {
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

# cleanup: the EXIT trap. Stops the script's processes (stop_children); after
# a failure (not Ctrl-C or SIGTERM) shows the last lines of each of
# FAILURE_LOGS; removes $tmp unless KEEP_TMP=1; exits with the script's status.
cleanup() {
    local rc=$? pattern f
    trap - EXIT INT TERM HUP
    set +e
    stop_children
    if ((rc != 0 && rc < 128)); then
        for pattern in "${FAILURE_LOGS[@]}"; do
            # shellcheck disable=SC2086 # the pattern may be a glob
            for f in "$tmp"/$pattern; do
                if [[ -s "$f" ]]; then
                    log "---- last lines of ${f#"$tmp"/} ----"
                    tail -n 20 "$f" >&2
                fi
            done
        done
    fi
    if [[ "${KEEP_TMP:-0}" == 1 ]]; then
        log "keeping temporary directory $tmp"
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}

# port_in_use PORT: true if something listens on UDP or TCP PORT (any address).
port_in_use() {
    command -v ss >/dev/null 2>&1 || return 1
    [[ -n "$(ss -Hlnut "( sport = :$1 )" 2>/dev/null)" ]]
}

# require_free_ports HINT PORT...: exits 2 when one of the PORTs is in use;
# HINT tells which variables pick others.
require_free_ports() {
    local hint="$1" p
    shift
    for p in "$@"; do
        if port_in_use "$p"; then
            usage_die "port $p is already in use on this host; $hint"
        fi
    done
}

# ---------------------------------------------------------------- readiness
# poll_ready NAME PID NOTE CHECK...: runs CHECK every 0.25 s for ~10 s (wall
# clock) until it succeeds (status 0) or time runs out (status 1). Dies as
# soon as PID has exited, with NOTE appended to the message.
poll_ready() {
    local name="$1" pid="$2" note="$3" deadline=$((SECONDS + 10))
    shift 3
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || die "$name exited during startup$note"
        "$@" && return 0
        sleep 0.25
    done
    return 1
}

# soa_answers DIG PORT ZONE: true when DIG (dig or kdig) gets an SOA record
# for ZONE from ADDR:PORT. Both print errors to stdout too, so an actual SOA
# rdata line is required.
soa_answers() {
    "$1" +short +time=1 +retry=0 @"$ADDR" -p "$2" SOA "$3" 2>/dev/null |
        grep -Eq '^[^;[:space:]]+ [^[:space:]]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+$'
}

# wait_soa DIG ZONE NAME PID PORT LOG: waits until server NAME (pid PID, log
# LOG) answers SOA ZONE on ADDR:PORT; dies when it exits or takes over ~10 s.
wait_soa() {
    local dig="$1" zone="$2" name="$3" pid="$4" port="$5" logf="$6"
    if poll_ready "$name" "$pid" " (log: $(basename "$logf"))" soa_answers "$dig" "$port" "$zone"; then
        log "$name answers on $ADDR:$port"
        return 0
    fi
    die "$name did not answer SOA $zone on $ADDR:$port within ~10 s"
}

# ---------------------------------------------------------------- figures
# median DIGITS VALUE...: the median of the values, with DIGITS decimals
# (0 when there are none).
median() {
    local digits="$1"
    shift
    printf '%s\n' "$@" | sort -g | awk -v d="$digits" '{ v[NR] = $1 } END {
        if (NR == 0) { print 0; exit }
        if (NR % 2) m = v[(NR + 1) / 2]
        else m = (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.*f\n", d, m }'
}

# ratio A B [DIGITS]: A/B with DIGITS (default 2) decimals, "nan" unless B > 0
# (and not "inf").
ratio() {
    awk -v a="$1" -v b="$2" -v d="${3:-2}" \
        'BEGIN { if (b > 0 && b != "inf") printf "%.*f", d, a / b; else print "nan" }'
}

# at_most A B: true when A <= B (numerically; A "inf" is never at most).
at_most() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "inf" && a + 0 <= b + 0) }'; }

# at_least A B: true when A >= B (numerically).
at_least() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }

# verdict CMD...: PASS when CMD succeeds, else FAIL.
verdict() { if "$@"; then echo PASS; else echo FAIL; fi; }

# warn_box LINE...: the lines between two rows of '!', on stderr, each after "!! ".
warn_box() {
    {
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        printf '!! %s\n' "$@"
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    } >&2
}

# qps_table TITLE_A A TITLE_B B: the per-round table of two servers' dnsperf
# figures and their medians. A and B are name prefixes: A_qps, A_lost and
# A_cpu are arrays with one entry per round (ROUNDS of them).
qps_table() {
    local -n a_qps="${2}_qps" a_lost="${2}_lost" a_cpu="${2}_cpu"
    local -n b_qps="${4}_qps" b_lost="${4}_lost" b_cpu="${4}_cpu"
    local row='%-8s | %12s %8s %9s | %12s %8s %9s\n' i
    local rule="---------+-------------------------------+-------------------------------"
    # shellcheck disable=SC2059 # the format is this function's own
    printf "$row" round "$1" lost "cpu_us/q" "$3" lost "cpu_us/q"
    printf '%s\n' "$rule"
    for ((i = 0; i < ROUNDS; i++)); do
        # shellcheck disable=SC2059
        printf "$row" "$((i + 1))" "${a_qps[i]}" "${a_lost[i]}" "${a_cpu[i]}" "${b_qps[i]}" "${b_lost[i]}" "${b_cpu[i]}"
    done
    printf '%s\n' "$rule"
    printf '%-8s | %12.0f %8s %9s | %12.0f %8s %9s\n' median "$(median 2 "${a_qps[@]}")" "" \
        "$(median 2 "${a_cpu[@]}")" "$(median 2 "${b_qps[@]}")" "" "$(median 2 "${b_cpu[@]}")"
}

# ---------------------------------------------------------------- CPU time
CLK_TCK="$(getconf CLK_TCK 2>/dev/null || echo 100)"

# cpu_ticks PID: utime+stime (all threads) of PID, in clock ticks (0 once it is gone).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# cpu_ticks_tree PID: cpu_ticks of PID plus those of its child processes
# (worker processes).
cpu_ticks_tree() {
    local total=0 p
    for p in "$1" $(pgrep -P "$1" 2>/dev/null || true); do
        total=$((total + $(cpu_ticks "$p")))
    done
    echo "$total"
}

# cpu_us_per TICKS N: CPU microseconds per operation, 2 decimals ("n/a" for N = 0).
cpu_us_per() {
    awk -v d="$1" -v hz="$CLK_TCK" -v n="$2" \
        'BEGIN { if (n > 0) printf "%.2f", d / hz * 1e6 / n; else print "n/a" }'
}

# children_ticks: sets CHILD_TICKS to the user+system CPU of this shell's
# waited-for children, in clock ticks. `times` must run in this shell, not in
# a subshell (a forked subshell has no children of its own yet), hence the file.
children_ticks() {
    times >"$tmp/times.out"
    CHILD_TICKS="$(awk -v hz="$CLK_TCK" 'NR == 2 { t = 0
        for (i = 1; i <= 2; i++) { split($i, p, "m"); sub(/s$/, "", p[2]); t += p[1] * 60 + p[2] }
        printf "%.0f", t * hz }' "$tmp/times.out")"
}

# system_busy_ticks: busy (non-idle) clock ticks of all CPUs since boot.
system_busy_ticks() {
    awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

# idle_percent: share of all CPUs idle over the next second, from /proc/stat.
idle_percent() {
    local a b
    a="$(awk '/^cpu / { print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)"
    sleep 1
    b="$(awk '/^cpu / { print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)"
    awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ")
        t = y[2] - x[2]; if (t > 0) printf "%.0f", (y[1] - x[1]) * 100 / t; else print 100 }'
}

busy_warnings=()

# check_quiet WHEN: warns loudly when something else keeps the CPUs busy (the
# figures would be off), and records it in busy_warnings.
check_quiet() {
    local idle
    idle="$(idle_percent)"
    if ((idle < 90)); then
        log "WARNING: only ${idle}% of the CPUs were idle just now ($1): other work competes with"
        log "         the benchmark, so absolute figures are low and the ratios noisier"
        busy_warnings+=("$1: ${idle}% idle")
    fi
}

# ---------------------------------------------------------------- DNS servers and load
# zone_head ZONE: the static part of a bench zone (SOA, NS and their
# addresses). gdnsd clamps the SOA TTL to the SOA minimum (ncache) and warns,
# so both are 300.
zone_head() {
    cat <<EOF
\$TTL 300
@    IN SOA ns1.$1. hostmaster.$1. 1 3600 600 86400 300
@    IN NS  ns1.$1.
@    IN NS  ns2.$1.
ns1  IN A   127.0.0.1
ns2  IN A   127.0.0.2
EOF
}

# gdnsd_options LISTEN DIR: gdnsd's options block, with run_dir and
# state_dir inside DIR. gdnsd 3.x has no privilege handling of its own: it
# runs as whoever starts it, and then touches nothing in /run or /var/lib.
gdnsd_options() {
    cat <<EOF
options => {
  listen => [ "$1" ]
  run_dir => "$2/run"
  state_dir => "$2/state"
}
EOF
}

# gdnsd_checkconf DIR OUT: `gdnsd -c DIR checkconf` into OUT; dies showing OUT
# when it fails.
gdnsd_checkconf() {
    gdnsd -c "$1" checkconf >"$2" 2>&1 || { cat "$2" >&2; die "gdnsd checkconf failed"; }
}

# start_gdnsd DIR: starts gdnsd with the config in DIR, logging to
# $tmp/gdnsd.log; sets gdnsd_pid.
start_gdnsd() {
    log "starting gdnsd: gdnsd -c $1 start"
    env -u NOTIFY_SOCKET gdnsd -c "$1" start >"$tmp/gdnsd.log" 2>&1 &
    gdnsd_pid=$!
}

# start_meridian CONFIG: starts `meridian serve`, logging to
# $tmp/meridian.log; sets meridian_pid.
start_meridian() {
    log "starting meridian: $MERIDIAN_BIN serve --config $1"
    "$MERIDIAN_BIN" serve --config "$1" >"$tmp/meridian.log" 2>&1 &
    meridian_pid=$!
}

# gdnsd_threads LOG: the DNS listener threads gdnsd's log reports.
gdnsd_threads() {
    sed -n 's/.*DNS listener threads (\(.*\)) configured.*/\1/p' "$1" | head -n1
}

# gdnsd_version, dnsperf_version: the versions the tools report.
gdnsd_version() { gdnsd -h 2>&1 | sed -n 's/^gdnsd version //p' | head -n1; }
dnsperf_version() { dnsperf -h 2>&1 | sed -n 's/^Version //p' | head -n1; }

# parse_dnsperf NAME FILE: reads dnsperf's report in FILE into D_QPS, D_DONE
# (completed), D_LOST and D_NOERR (NOERROR responses, empty when none are
# listed); dies showing FILE when a figure is missing.
parse_dnsperf() {
    local name="$1" f="$2"
    D_QPS="$(awk '/Queries per second:/ { print $4; exit }' "$f")"
    D_DONE="$(awk '/Queries completed:/ { print $3; exit }' "$f")"
    D_LOST="$(awk '/Queries lost:/ { print $3; exit }' "$f")"
    D_NOERR="$(awk '/Response codes:/ { for (i = 1; i <= NF; i++) if ($i == "NOERROR") { print $(i + 1); exit } print 0; exit }' "$f")"
    [[ -n "$D_QPS" && -n "$D_DONE" && -n "$D_LOST" ]] || { cat "$f" >&2; die "could not parse dnsperf output for $name"; }
}

dnsperf_pid=""

# run_dnsperf NAME PID PORT SECONDS OUTFILE DNSPERF_ARG...: one dnsperf run
# (-c CLIENTS -q OUTSTANDING -T 1, plus the DNSPERF_ARGs: the query file)
# against server NAME (pid PID) on ADDR:PORT. Sets R_QPS (rounded), R_LOST,
# R_CPU (server CPU microseconds per completed query) and R_BAD (responses
# other than NOERROR). Runs in the main shell (no subshell) so `die` aborts
# the script and cleanup can stop dnsperf.
run_dnsperf() {
    local name="$1" pid="$2" port="$3" secs="$4" out="$5" t0 t1 rc=0
    shift 5
    R_QPS="" R_LOST="" R_CPU="" R_BAD=""
    kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) is no longer running"
    t0="$(cpu_ticks "$pid")"
    dnsperf -s "$ADDR" -p "$port" "$@" -l "$secs" \
        -c "$CLIENTS" -q "$OUTSTANDING" -T 1 -t 2 >"$out" 2>&1 &
    dnsperf_pid=$!
    wait "$dnsperf_pid" || rc=$?
    dnsperf_pid=""
    t1="$(cpu_ticks "$pid")"
    kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) died during the dnsperf run"
    ((rc == 0)) || { cat "$out" >&2; die "dnsperf against $name failed (exit $rc)"; }
    parse_dnsperf "$name" "$out"
    R_QPS="$(printf '%.0f' "$D_QPS")"
    R_LOST="$D_LOST"
    R_BAD=$((D_DONE - ${D_NOERR:-0}))
    R_CPU="$(cpu_us_per "$((t1 - t0))" "$D_DONE")"
}
