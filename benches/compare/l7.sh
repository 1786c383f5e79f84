#!/usr/bin/env bash
# Compare Meridian's embedded L7 HTTP balancer against nginx and HAProxy.
#
# One backend (a one-worker nginx serving a small static file) sits behind
# three proxies on 127.0.0.1: Meridian ([balancers.bench] with its defaults:
# one balancer worker thread per core), nginx (proxy_pass with upstream
# keepalive, worker_processes 2) and HAProxy (mode http, nbthread 2). wrk
# drives each in turn with the same shape (-t1 -c50 --latency) in one run; the
# proxy that goes first rotates every round. Prints per-round req/s, p50, p99
# and proxy CPU time per request, the medians, the ratios, a PASS/FAIL line
# per bar (BAR) and per target (TARGET), and:
#   RESULT l7 meridian_rps=... nginx_rps=... haproxy_rps=... meridian_p99_ms=... ratio_nginx=... ratio_haproxy=...
#   RESULT l7-latency ...   (p50 and p99 of all three)
#   RESULT bars ...         (PASS/FAIL of each bar and target)
# It warns when other work keeps the CPUs busy during a run (>= 10% of them),
# because the figures are then not comparable.
#
# Environment:
#   ROUNDS         rounds per proxy (default 5)
#   DURATION       seconds per wrk run (default 10)
#   WARMUP         seconds of unmeasured warm-up per proxy (default 3, 0 = off)
#   CONNECTIONS    wrk -c (default 50)
#   THREADS        wrk -t (default 1)
#   MERIDIAN_BIN   use this meridian binary instead of `cargo build --release`
#   BACKEND_PORT   port of the backend nginx       (default 18080)
#   MERIDIAN_PORT  port of Meridian's balancer     (default 18081)
#   NGINX_PORT     port of the nginx proxy         (default 18082)
#   HAPROXY_PORT   port of HAProxy                 (default 18083)
#   DNS_PORT       Meridian's DNS port (unused by the benchmark, required by
#                  its config) (default 18053)
#   BODY_BYTES     size of the static file (default 128)
#   KEEP_TMP=1     keep the temporary directory (configs, logs, wrk output)
#
# Exit codes: 0 ok (a failed bar is reported, not an error), 1 failure,
# 2 missing tools / bad arguments.
set -euo pipefail

ROUNDS="${ROUNDS:-5}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-3}"
CONNECTIONS="${CONNECTIONS:-50}"
THREADS="${THREADS:-1}"
BACKEND_PORT="${BACKEND_PORT:-18080}"
MERIDIAN_PORT="${MERIDIAN_PORT:-18081}"
NGINX_PORT="${NGINX_PORT:-18082}"
HAPROXY_PORT="${HAPROXY_PORT:-18083}"
DNS_PORT="${DNS_PORT:-18053}"
BODY_BYTES="${BODY_BYTES:-128}"
ADDR=127.0.0.1 # loopback only, never anything else
FILE_PATH=/static.txt
PROXIES=(meridian nginx haproxy)

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
ZONE_FILE="$SCRIPT_DIR/zones/bench.example.zone"

# shellcheck source=SCRIPTDIR/lib.sh disable=SC1091
. "$SCRIPT_DIR/lib.sh"

# ---------------------------------------------------------------- arguments
require_uints 7 ROUNDS DURATION WARMUP CONNECTIONS THREADS BACKEND_PORT MERIDIAN_PORT NGINX_PORT \
    HAPROXY_PORT DNS_PORT BODY_BYTES
require_run_shape
require_range THREADS 1 64
((CONNECTIONS >= THREADS && CONNECTIONS <= 10000)) ||
    usage_die "CONNECTIONS must be an integer THREADS..10000 (got '$CONNECTIONS')"
require_range BODY_BYTES 1 1048576
require_ports BACKEND_PORT MERIDIAN_PORT NGINX_PORT HAPROXY_PORT DNS_PORT
[[ -f "$ZONE_FILE" ]] || usage_die "zone file not found: $ZONE_FILE"

# ---------------------------------------------------------------- tools
need_tool nginx nginx
need_tool haproxy haproxy
need_tool wrk wrk
need_tool curl curl
exit_if_missing tools \
    "(the nginx and haproxy packages may start system services; this script uses its own" \
    " configs on loopback ports only, so 'systemctl disable --now nginx haproxy' is fine)"
meridian_precheck

# ---------------------------------------------------------------- temp dir + cleanup
backend_pid=""
meridian_pid=""
nginx_pid=""
haproxy_pid=""
wrk_pid=""
stop_children() {
    stop_pid "$wrk_pid" wrk
    stop_pid "$meridian_pid" meridian
    stop_pid "$nginx_pid" "nginx (proxy)"
    stop_pid "$haproxy_pid" haproxy
    stop_pid "$backend_pid" "nginx (backend)"
}
FAILURE_LOGS=(meridian.log nginx-proxy/error.log haproxy.log backend/error.log)
make_tmp meridian-l7

# ---------------------------------------------------------------- helpers
fetch() { # fetch PORT: the body of GET FILE_PATH, or nothing
    curl -sS --max-time 2 --noproxy '*' "http://$ADDR:$1$FILE_PATH" 2>/dev/null || true
}

serves_file() { [[ "$(fetch "$1")" == "$body" ]]; } # serves_file PORT

wait_ready() { # wait_ready NAME PID PORT: poll GET FILE_PATH for ~10 s (wall clock)
    if poll_ready "$1" "$2" "" serves_file "$3"; then
        log "$1 serves $FILE_PATH on $ADDR:$3"
        return 0
    fi
    die "$1 did not serve $FILE_PATH on $ADDR:$3 within ~10 s"
}

to_ms() { # to_ms "1.52ms" | "850.00us" | "1.02s" -> milliseconds
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
        else print "nan" }'
}

NCPU="$(nproc 2>/dev/null || echo 1)"

# run_wrk NAME PID PORT SECONDS OUTFILE
# Sets globals R_RPS (rounded), R_P50/R_P99 (ms), R_ERR (socket errors +
# non-2xx/3xx responses), R_CPU (proxy CPU microseconds per request, all
# threads and worker processes) and R_OTHER (% of all CPUs busy with other
# work during the run). Runs in the main shell so `die` aborts the
# script and the trap can stop wrk.
run_wrk() {
    local name="$1" pid="$2" port="$3" secs="$4" out="$5" rc=0 rps p50 p99 requests errors
    local t0 t1 b0 b1 w0 w1 s0 s1
    R_RPS="" R_P50="" R_P99="" R_ERR="" R_CPU="" R_OTHER=""
    kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) is no longer running"
    t0="$(cpu_ticks_tree "$pid")"
    b0="$(cpu_ticks_tree "$backend_pid")"
    children_ticks
    w0="$CHILD_TICKS"
    s0="$(system_busy_ticks)"
    wrk -t "$THREADS" -c "$CONNECTIONS" -d "${secs}s" --timeout 2s --latency \
        "http://$ADDR:$port$FILE_PATH" >"$out" 2>&1 &
    wrk_pid=$!
    wait "$wrk_pid" || rc=$?
    wrk_pid=""
    t1="$(cpu_ticks_tree "$pid")"
    b1="$(cpu_ticks_tree "$backend_pid")"
    children_ticks
    w1="$CHILD_TICKS"
    s1="$(system_busy_ticks)"
    # CPU busy with anything but wrk, the backend and this proxy, as a share of all CPUs.
    R_OTHER="$(awk -v s="$((s1 - s0))" -v own="$((t1 - t0 + b1 - b0 + w1 - w0))" \
        -v cap="$((secs * CLK_TCK * NCPU))" 'BEGIN { o = (s - own) * 100 / cap; printf "%.0f", o < 0 ? 0 : o }')"
    kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) died during the wrk run"
    ((rc == 0)) || { cat "$out" >&2; die "wrk against $name failed (exit $rc)"; }
    rps="$(awk '/^Requests\/sec:/ { print $2; exit }' "$out")"
    requests="$(awk '/ requests in / { print $1; exit }' "$out")"
    p50="$(awk '/^ +50% / { print $2; exit }' "$out")"
    p99="$(awk '/^ +99% / { print $2; exit }' "$out")"
    [[ -n "$rps" && -n "$requests" && -n "$p50" && -n "$p99" ]] ||
        { cat "$out" >&2; die "could not parse wrk output for $name"; }
    errors="$(awk '/^  Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 }
        /^  Non-2xx or 3xx responses:/ { n += $5 } END { print n + 0 }' "$out")"
    R_RPS="$(printf '%.0f' "$rps")"
    R_P50="$(to_ms "$p50")"
    R_P99="$(to_ms "$p99")"
    R_ERR="$errors"
    R_CPU="$(cpu_us_per "$((t1 - t0))" "$requests")"
}

port_of() { # port_of PROXY
    case "$1" in
        meridian) echo "$MERIDIAN_PORT" ;;
        nginx) echo "$NGINX_PORT" ;;
        haproxy) echo "$HAPROXY_PORT" ;;
    esac
}

pid_of() { # pid_of PROXY
    case "$1" in
        meridian) echo "$meridian_pid" ;;
        nginx) echo "$nginx_pid" ;;
        haproxy) echo "$haproxy_pid" ;;
    esac
}

# ---------------------------------------------------------------- meridian binary
meridian_build
require_free_ports "pick others with BACKEND_PORT/MERIDIAN_PORT/NGINX_PORT/HAPROXY_PORT/DNS_PORT" \
    "$BACKEND_PORT" "$MERIDIAN_PORT" "$NGINX_PORT" "$HAPROXY_PORT" "$DNS_PORT"

# ---------------------------------------------------------------- configs
# nginx workers drop to `user` only when the master runs as root; the temp
# directory is private (mode 700), so they keep our identity instead.
nginx_user=""
if ((EUID == 0)); then
    nginx_user="user root root;"
fi
# The static file: BODY_BYTES of printable text ending in a newline.
body="$(head -c "$((BODY_BYTES * 2))" /dev/zero | tr '\0' 'x' | head -c "$((BODY_BYTES - 1))")"
mkdir -p "$tmp/backend/www" "$tmp/nginx-proxy"
printf '%s\n' "$body" >"$tmp/backend/www${FILE_PATH}"

# Settings shared by both nginx instances: everything under a private prefix,
# no access log, effectively unlimited keep-alive requests per connection
# (nginx's default of 1000 would make wrk and the proxies reconnect).
nginx_common() { # nginx_common DIR
    cat <<EOF
daemon off;
master_process on;
$nginx_user
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
EOF
}
nginx_http_common() { # nginx_http_common DIR
    cat <<EOF
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path $1/client_body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
EOF
}

# The backend: one nginx worker serving the file from an open-file cache.
{
    nginx_common "$tmp/backend"
    echo "worker_processes 1;"
    echo "http {"
    nginx_http_common "$tmp/backend"
    cat <<EOF
    default_type text/plain;
    open_file_cache max=16 inactive=60s;
    open_file_cache_valid 60s;
    server {
        listen $ADDR:$BACKEND_PORT reuseport backlog=4096;
        root $tmp/backend/www;
    }
}
EOF
} >"$tmp/backend/nginx.conf"

# The nginx proxy: 2 workers, HTTP/1.1 upstream with a keep-alive pool, the
# usual forwarding headers (Meridian and HAProxy add theirs as well).
{
    nginx_common "$tmp/nginx-proxy"
    echo "worker_processes 2;"
    echo "http {"
    nginx_http_common "$tmp/nginx-proxy"
    cat <<EOF
    upstream backend {
        server $ADDR:$BACKEND_PORT;
        keepalive 128;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }
    server {
        listen $ADDR:$NGINX_PORT backlog=4096;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
}
EOF
} >"$tmp/nginx-proxy/nginx.conf"

# HAProxy: 2 threads, HTTP mode with keep-alive on both sides (its default),
# X-Forwarded-For added, no logging.
cat >"$tmp/haproxy.cfg" <<EOF
global
    nbthread 2
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    option forwardfor
    timeout connect 1s
    timeout client 60s
    timeout server 30s
    timeout http-keep-alive 60s
frontend bench
    bind $ADDR:$HAPROXY_PORT
    http-request set-header X-Forwarded-Proto http
    default_backend backend
backend backend
    server b1 $ADDR:$BACKEND_PORT
EOF

# Meridian: a DNS side it needs to start (unused here) and one balancer with
# the default settings (round robin, default timeouts, no health checks, like
# the other two proxies).
mkdir -p "$tmp/meridian/zones"
cp "$ZONE_FILE" "$tmp/meridian/zones/bench.example.zone"
cat >"$tmp/meridian.toml" <<EOF
[dns]
listen = ["$ADDR:$DNS_PORT"]
zones_dir = "meridian/zones"

[balancers.bench]
listen = "$ADDR:$MERIDIAN_PORT"
backends = [{ addr = "$ADDR:$BACKEND_PORT" }]
EOF

nginx -t -p "$tmp/backend" -c "$tmp/backend/nginx.conf" -e "$tmp/backend/error.log" \
    >"$tmp/backend-check.log" 2>&1 || { cat "$tmp/backend-check.log" >&2; die "backend nginx config check failed"; }
nginx -t -p "$tmp/nginx-proxy" -c "$tmp/nginx-proxy/nginx.conf" -e "$tmp/nginx-proxy/error.log" \
    >"$tmp/nginx-check.log" 2>&1 || { cat "$tmp/nginx-check.log" >&2; die "proxy nginx config check failed"; }
haproxy -c -f "$tmp/haproxy.cfg" >"$tmp/haproxy-check.log" 2>&1 ||
    { cat "$tmp/haproxy-check.log" >&2; die "haproxy config check failed"; }

# ---------------------------------------------------------------- start servers
log "starting backend: nginx (1 worker) on $ADDR:$BACKEND_PORT"
nginx -p "$tmp/backend" -c "$tmp/backend/nginx.conf" -e "$tmp/backend/error.log" &
backend_pid=$!
wait_ready "backend nginx" "$backend_pid" "$BACKEND_PORT"

start_meridian "$tmp/meridian.toml"
log "starting nginx proxy (worker_processes 2)"
nginx -p "$tmp/nginx-proxy" -c "$tmp/nginx-proxy/nginx.conf" -e "$tmp/nginx-proxy/error.log" &
nginx_pid=$!
log "starting haproxy (nbthread 2)"
haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 &
haproxy_pid=$!

wait_ready meridian "$meridian_pid" "$MERIDIAN_PORT"
wait_ready "nginx proxy" "$nginx_pid" "$NGINX_PORT"
wait_ready haproxy "$haproxy_pid" "$HAPROXY_PORT"

ncpu="$(nproc 2>/dev/null || echo '?')"
meridian_threads="$(awk '/^Threads:/ { print $2 }' "/proc/$meridian_pid/status" 2>/dev/null || echo '?')"

# ---------------------------------------------------------------- sanity check
# Same status and body through every proxy; the response headers differ (each
# proxy adds or rewrites its own), so those are only shown.
for s in "${PROXIES[@]}"; do
    port="$(port_of "$s")"
    status="$(curl -sS --max-time 2 --noproxy '*' -o "$tmp/sanity-$s.body" -D "$tmp/sanity-$s.head" \
        -w '%{http_code} %{http_version}' "http://$ADDR:$port$FILE_PATH" 2>&1)" || status="curl failed: $status"
    if [[ "$status" != "200 1.1" ]] || ! cmp -s "$tmp/sanity-$s.body" "$tmp/backend/www${FILE_PATH}"; then
        die "$s: GET $FILE_PATH did not return 200 over HTTP/1.1 with the backend's file ($status)"
    fi
    log "$s: 200, $(wc -c <"$tmp/sanity-$s.body") bytes, headers: $(tr -d '\r' <"$tmp/sanity-$s.head" |
        awk -F: 'NR > 1 && NF > 1 { printf "%s%s", sep, $1; sep = "," }')"
done

# ---------------------------------------------------------------- measure
check_quiet "before the runs"
if ((WARMUP > 0)); then
    log "warm-up: ${WARMUP}s per proxy (not measured)"
    for s in "${PROXIES[@]}"; do
        run_wrk "$s" "$(pid_of "$s")" "$(port_of "$s")" "$WARMUP" "$tmp/warmup-$s.out"
    done
fi

declare -A rps=() p50=() p99=() err=() cpu=()
for ((r = 1; r <= ROUNDS; r++)); do
    # Rotate which proxy goes first, to cancel ordering and thermal effects.
    first=$(((r - 1) % ${#PROXIES[@]}))
    order=("${PROXIES[@]:first}" "${PROXIES[@]:0:first}")
    for s in "${order[@]}"; do
        log "round $r/$ROUNDS: wrk -> $s for ${DURATION}s"
        run_wrk "$s" "$(pid_of "$s")" "$(port_of "$s")" "$DURATION" "$tmp/r$r-$s.out"
        rps[$s]+="$R_RPS " p50[$s]+="$R_P50 " p99[$s]+="$R_P99 " err[$s]+="$R_ERR " cpu[$s]+="$R_CPU "
        if ((R_OTHER >= 10)); then
            log "WARNING: other work kept ${R_OTHER}% of the CPUs busy during this run"
            busy_warnings+=("round $r $s: ${R_OTHER}% busy with other work")
        fi
        if ((R_ERR > 0)); then
            log "WARNING: $s had $R_ERR socket errors or non-2xx/3xx responses in round $r"
        fi
    done
done

check_quiet "after the runs"

declare -A med_rps=() med_p50=() med_p99=() med_cpu=() sum_err=()
for s in "${PROXIES[@]}"; do
    read -r -a v <<<"${rps[$s]}"
    ((${#v[@]} == ROUNDS)) || die "missing results for $s"
    med_rps[$s]="$(median 0 "${v[@]}")"
    read -r -a v <<<"${p50[$s]}"
    med_p50[$s]="$(median 3 "${v[@]}")"
    read -r -a v <<<"${p99[$s]}"
    med_p99[$s]="$(median 3 "${v[@]}")"
    read -r -a v <<<"${cpu[$s]}"
    med_cpu[$s]="$(median 2 "${v[@]}")"
    read -r -a v <<<"${err[$s]}"
    sum_err[$s]="$(printf '%s\n' "${v[@]}" | awk '{ n += $1 } END { print n + 0 }')"
done

ratio_nginx="$(ratio "${med_rps[meridian]}" "${med_rps[nginx]}")"
ratio_haproxy="$(ratio "${med_rps[meridian]}" "${med_rps[haproxy]}")"
p99_ratio_nginx="$(ratio "${med_p99[meridian]}" "${med_p99[nginx]}")"
p99_ratio_haproxy="$(ratio "${med_p99[meridian]}" "${med_p99[haproxy]}")"
bar_rps_nginx="$(verdict at_least "${med_rps[meridian]}" "${med_rps[nginx]}")"
bar_p99_nginx="$(verdict at_most "${med_p99[meridian]}" "${med_p99[nginx]}")"
bar_rps_haproxy="$(verdict at_least "${med_rps[meridian]}" "${med_rps[haproxy]}")"
bar_p99_haproxy="$(verdict at_most "${med_p99[meridian]}" "${med_p99[haproxy]}")"

# ---------------------------------------------------------------- report
echo
echo "L7 proxying: Meridian vs nginx vs HAProxy, GET $FILE_PATH ($BODY_BYTES bytes) from one backend"
echo "  host:     $ncpu CPU(s), shared by wrk, the backend and the proxy under test"
echo "  wrk:      $(wrk --version 2>&1 | awk 'NR == 1 { print $2 }') -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency, $ROUNDS round(s) per proxy, rotating order"
echo "  backend:  $(nginx -v 2>&1 | sed 's/^nginx version: //') worker_processes 1 on $ADDR:$BACKEND_PORT"
echo "  meridian: $MERIDIAN_BIN on $ADDR:$MERIDIAN_PORT (default runtime: one worker per core; $meridian_threads threads in all)"
echo "  nginx:    $(nginx -v 2>&1 | sed 's/^nginx version: //') worker_processes 2, upstream keepalive 128, on $ADDR:$NGINX_PORT"
echo "  haproxy:  $(haproxy -v 2>&1 | awk 'NR == 1 { print $3 }') nbthread 2, mode http, on $ADDR:$HAPROXY_PORT"
echo
printf '%-6s |' round
for s in "${PROXIES[@]}"; do printf ' %-33s |' "$s: req/s p50 p99 cpu_us/req"; done
echo
line="$(printf '%.0s-' {1..6})+"
for s in "${PROXIES[@]}"; do line+="$(printf '%.0s-' {1..35})+"; done
echo "$line"
for ((i = 0; i < ROUNDS; i++)); do
    printf '%-6s |' "$((i + 1))"
    for s in "${PROXIES[@]}"; do
        read -r -a a <<<"${rps[$s]}"
        read -r -a b <<<"${p50[$s]}"
        read -r -a c <<<"${p99[$s]}"
        read -r -a d <<<"${cpu[$s]}"
        printf ' %9s %7s %7s %7s |' "${a[i]}" "${b[i]}" "${c[i]}" "${d[i]}"
    done
    echo
done
echo "$line"
printf '%-6s |' median
for s in "${PROXIES[@]}"; do
    printf ' %9s %7s %7s %7s |' "${med_rps[$s]}" "${med_p50[$s]}" "${med_p99[$s]}" "${med_cpu[$s]}"
done
echo
echo
echo "latencies in ms (wrk --latency); cpu_us/req = proxy CPU time (all threads and workers) per request"
echo "req/s ratio meridian/nginx   = $ratio_nginx   (>1: meridian is faster); p99 ratio = $p99_ratio_nginx (<=1: no worse)"
echo "req/s ratio meridian/haproxy = $ratio_haproxy   (>1: meridian is faster); p99 ratio = $p99_ratio_haproxy (<=1: no worse)"
for s in "${PROXIES[@]}"; do
    if ((sum_err[$s] > 0)); then
        echo "WARNING: $s had ${sum_err[$s]} socket errors or non-2xx/3xx responses in all (see wrk output)"
    fi
done
if ((${#busy_warnings[@]} > 0)); then
    echo "WARNING: the machine was busy with other work; rerun on a quiet machine:"
    printf '  - %s\n' "${busy_warnings[@]}"
fi
echo
echo "BAR meridian_rps >= 1.0x nginx:            $bar_rps_nginx (${med_rps[meridian]} vs ${med_rps[nginx]})"
echo "BAR meridian_p99 no worse than nginx:      $bar_p99_nginx (${med_p99[meridian]} ms vs ${med_p99[nginx]} ms)"
echo "TARGET meridian_rps >= 1.0x haproxy:       $bar_rps_haproxy (${med_rps[meridian]} vs ${med_rps[haproxy]})"
echo "TARGET meridian_p99 no worse than haproxy: $bar_p99_haproxy (${med_p99[meridian]} ms vs ${med_p99[haproxy]} ms)"
echo
printf 'RESULT l7 meridian_rps=%s nginx_rps=%s haproxy_rps=%s meridian_p99_ms=%s ratio_nginx=%s ratio_haproxy=%s\n' \
    "${med_rps[meridian]}" "${med_rps[nginx]}" "${med_rps[haproxy]}" "${med_p99[meridian]}" "$ratio_nginx" "$ratio_haproxy"
printf 'RESULT l7-latency meridian_p99_ms=%s nginx_p99_ms=%s haproxy_p99_ms=%s meridian_p50_ms=%s nginx_p50_ms=%s haproxy_p50_ms=%s\n' \
    "${med_p99[meridian]}" "${med_p99[nginx]}" "${med_p99[haproxy]}" "${med_p50[meridian]}" "${med_p50[nginx]}" "${med_p50[haproxy]}"
printf 'RESULT bars rps_vs_nginx=%s p99_vs_nginx=%s rps_vs_haproxy=%s p99_vs_haproxy=%s\n' \
    "$bar_rps_nginx" "$bar_p99_nginx" "$bar_rps_haproxy" "$bar_p99_haproxy"
