#!/usr/bin/env bash
# Compare Meridian's and gdnsd 3.x's UDP throughput for a geo-steered name.
#
# Both servers answer www.geo.bench from the same world.mmdb (Debian's
# tor-geoipdb converted by tor-geoip-to-csv.py + `meridian geo build`, as in
# geo-compile.sh) with an equivalent continent map: six continent rules plus
# a default, each continent's first region answering a distinct address.
#   Meridian: [maps.world] + [services."www.geo.bench"] answers.REGION
#   gdnsd:    plugins => { geoip => { maps => { world => ... } } } + DYNA
# Every query carries EDNS Client Subnet (ECS) from one of COUNTRIES (client
# subnets taken from the world database input), so the servers steer by ECS.
#
# First both servers are asked, with kdig +subnet, for every test subnet
# (plus other continents, IPv6, and no/zero ECS); the answers are printed and
# a mismatch is warned about loudly. The exact query packets used for the load
# are also sent once to both servers and checked. Then ROUNDS rounds of
# DURATION seconds of dnsperf per server, alternating. Prints per-round and
# median QPS, lost queries, server CPU time per query, the ratio, and:
#   RESULT udp-geo meridian_qps=... gdnsd_qps=... ratio=...
#
# How ECS varies per query (ECS_MODE):
#   mixed     (default) one dnsperf process reading a binary datafile (-B) of
#             pre-built query packets, one per country, each with its own ECS
#             option: the countries are interleaved query by query, and the
#             client is shaped exactly like dns-vs-gdnsd.sh's (-c 8 -q 200 -T 1).
#   parallel  one dnsperf process per country, each with `-E 8:<ECS hex>` (the
#             option applies to all queries of a process), -c/-q split among
#             them; QPS, lost and completed are summed.
#
# Environment:
#   ROUNDS        rounds per server (default 3)
#   DURATION      seconds per dnsperf run (default 10)
#   WARMUP        seconds of unmeasured warm-up per server (default 2, 0 = off)
#   COUNTRIES     client countries, ISO codes (default "GB US JP BR")
#   ECS_MODE      mixed | parallel (default mixed)
#   MERIDIAN_BIN  use this meridian binary instead of `cargo build --release`
#   MERIDIAN_PORT UDP/TCP port for meridian (default 15353)
#   GDNSD_PORT    UDP/TCP port for gdnsd    (default 15354)
#   CLIENTS       dnsperf -c in total (default 8)
#   OUTSTANDING   dnsperf -q in total (default 200)
#   TOR_GEOIP, TOR_GEOIP6  tor geoip files (default /usr/share/tor/geoip{,6})
#   KEEP_TMP=1    keep the temporary directory (configs, logs) for inspection
#
# Exit codes: 0 ok, 1 failure, 2 missing tools / bad arguments.
set -euo pipefail

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
MERIDIAN_PORT="${MERIDIAN_PORT:-15353}"
GDNSD_PORT="${GDNSD_PORT:-15354}"
CLIENTS="${CLIENTS:-8}"      # see dns-vs-gdnsd.sh for the load shape
OUTSTANDING="${OUTSTANDING:-200}"
COUNTRIES="${COUNTRIES:-GB US JP BR}"
ECS_MODE="${ECS_MODE:-mixed}"
ECS_V4_SOURCE=24 # client subnet length sent in ECS (IPv4)
ECS_V6_SOURCE=48 # (IPv6, sanity check only)
ADDR=127.0.0.1   # loopback only, never anything else

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

# shellcheck source=SCRIPTDIR/lib.sh disable=SC1091
. "$SCRIPT_DIR/lib.sh"
# shellcheck source=SCRIPTDIR/geo-common.sh disable=SC1091
. "$SCRIPT_DIR/geo-common.sh"

# Continents of the countries this script knows how to label (the expected
# answer is printed next to what the servers say; it is not used to decide).
declare -A CC_CONTINENT=(
    [GB]=EU [DE]=EU [FR]=EU [NL]=EU [IT]=EU [ES]=EU [SE]=EU [PL]=EU [RU]=EU
    [US]=NA [CA]=NA [MX]=NA
    [BR]=SA [AR]=SA [CL]=SA [CO]=SA
    [JP]=AS [CN]=AS [IN]=AS [KR]=AS [SG]=AS
    [ZA]=AF [NG]=AF [EG]=AF [KE]=AF
    [AU]=OC [NZ]=OC
)

# ---------------------------------------------------------------- arguments
require_uints 6 ROUNDS DURATION WARMUP CLIENTS OUTSTANDING MERIDIAN_PORT GDNSD_PORT
require_run_shape
require_dnsperf_load
require_ports MERIDIAN_PORT GDNSD_PORT
[[ "$ECS_MODE" == mixed || "$ECS_MODE" == parallel ]] || usage_die "ECS_MODE must be mixed or parallel (got '$ECS_MODE')"
read -r -a countries <<<"${COUNTRIES^^}"
((${#countries[@]} >= 1 && ${#countries[@]} <= 16)) || usage_die "COUNTRIES must list 1..16 country codes"
for cc in "${countries[@]}"; do
    [[ "$cc" =~ ^[A-Z]{2}$ ]] || usage_die "COUNTRIES: '$cc' is not a 2-letter country code"
done
if [[ "$ECS_MODE" == parallel ]]; then
    ((CLIENTS >= ${#countries[@]})) || usage_die "ECS_MODE=parallel needs CLIENTS >= number of COUNTRIES (${#countries[@]})"
    ((OUTSTANDING >= ${#countries[@]})) || usage_die "ECS_MODE=parallel needs OUTSTANDING >= number of COUNTRIES"
fi

# ---------------------------------------------------------------- tools
geo_missing_pkgs
need_tool dnsperf dnsperf
need_tool kdig knot-dnsutils
exit_if_missing "tools or data"

# ---------------------------------------------------------------- temp dir + cleanup
meridian_pid=""
gdnsd_pid=""
dnsperf_pids=()
stop_children() {
    local p
    for p in "${dnsperf_pids[@]}"; do stop_pid "$p" dnsperf; done
    stop_pid "$meridian_pid" meridian
    stop_pid "$gdnsd_pid" gdnsd
}
FAILURE_LOGS=(meridian.log gdnsd.log)
make_tmp meridian-geo-vs-gdnsd

# ---------------------------------------------------------------- helpers
# geo_answer PORT SUBNET: "rcode=X a=ADDR[,ADDR] scope=S" for www.geo.bench A.
# SUBNET "-" sends no EDNS at all.
geo_answer() {
    local port="$1" subnet="$2" out rcode addrs scope
    local -a ecs=()
    [[ "$subnet" == - ]] || ecs=(+subnet="$subnet")
    out="$(kdig +time=2 +retry=0 +norecurse "${ecs[@]}" @"$ADDR" -p "$port" "$GEO_SERVICE" A 2>&1)" || true
    rcode="$(sed -n 's/.*status: \([A-Z]*\).*/\1/p' <<<"$out" | head -n1)"
    # answer lines: NAME TTL IN A ADDRESS
    addrs="$(awk '!/^;/ && $3 == "IN" && $4 == "A" { print $5 }' <<<"$out" | sort | paste -sd, -)"
    scope="$(sed -n 's/.*CLIENT-SUBNET: [^ ]*\/\([0-9]*\)$/\1/p' <<<"$out" | head -n1)"
    printf 'rcode=%s a=%s scope=%s\n' "${rcode:-NO-RESPONSE}" "${addrs:--}" "${scope:--}"
}

region_of_addr() { # 192.0.2.N -> region name
    local r
    for r in "${!GEO_ADDR[@]}"; do
        [[ "${GEO_ADDR[$r]}" == "$1" ]] && { printf '%s' "$r"; return 0; }
    done
    printf '?'
}

# ---------------------------------------------------------------- ECS packet tool
# ecs.py hex SUBNET            -> ECS option value (for dnsperf -E 8:HEX)
# ecs.py blob OUT NAME SUBNET.. -> dnsperf -B datafile, one A query per subnet
# ecs.py probe HOST PORT BLOB  -> sends each packet once, prints the A answers
cat >"$tmp/ecs.py" <<'PY'
import ipaddress, random, socket, struct, sys

def ecs_value(subnet):
    net = ipaddress.ip_network(subnet, strict=True)
    fam = 1 if net.version == 4 else 2
    src = net.prefixlen
    # FAMILY(2) SOURCE(1) SCOPE(1)=0 ADDRESS(ceil(source/8))
    return struct.pack("!HBB", fam, src, 0) + net.network_address.packed[:(src + 7) // 8]

def query(name, subnet):
    opt = ecs_value(subnet)
    rdata = struct.pack("!HH", 8, len(opt)) + opt
    qname = b"".join(bytes([len(l)]) + l.encode() for l in name.rstrip(".").split(".")) + b"\0"
    return (struct.pack("!HHHHHH", 0, 0, 1, 0, 0, 1) + qname + struct.pack("!HH", 1, 1)
            + b"\0" + struct.pack("!HHIH", 41, 1232, 0, len(rdata)) + rdata)

def skip_name(msg, i):
    while True:
        n = msg[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += 1 + n

def probe(host, port, blob):
    assert ipaddress.ip_address(host).is_loopback, "loopback only"
    data = open(blob, "rb").read()
    i = 0
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    while i + 2 <= len(data):
        (n,) = struct.unpack("!H", data[i:i + 2])
        pkt = bytearray(data[i + 2:i + 2 + n]); i += 2 + n
        qid = random.randrange(65536)
        pkt[0:2] = struct.pack("!H", qid)
        s.sendto(bytes(pkt), (host, port))
        try:
            msg = s.recv(4096)
        except socket.timeout:
            print("rcode=NO-RESPONSE a=-"); continue
        rid, flags, qd, an = struct.unpack("!HHHH", msg[:8])
        rcodes = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
        j = 12
        for _ in range(qd):
            j = skip_name(msg, j) + 4
        addrs = []
        for _ in range(an):
            j = skip_name(msg, j)
            typ, _cls, _ttl, rdlen = struct.unpack("!HHIH", msg[j:j + 10]); j += 10
            if typ == 1 and rdlen == 4:
                addrs.append(socket.inet_ntoa(msg[j:j + 4]))
            j += rdlen
        ok = "" if rid == qid else " (ID mismatch)"
        print("rcode=%s a=%s%s" % (rcodes.get(flags & 15, str(flags & 15)), ",".join(sorted(addrs)) or "-", ok))

cmd = sys.argv[1]
if cmd == "hex":
    print(ecs_value(sys.argv[2]).hex())
elif cmd == "blob":
    with open(sys.argv[2], "wb") as f:
        for subnet in sys.argv[4:]:
            q = query(sys.argv[3], subnet)
            f.write(struct.pack("!H", len(q)) + q)
elif cmd == "probe":
    probe(sys.argv[2], int(sys.argv[3]), sys.argv[4])
else:
    sys.exit("unknown command " + cmd)
PY

# ---------------------------------------------------------------- meridian, world.mmdb, configs
meridian_build
require_free_ports "pick another with MERIDIAN_PORT/GDNSD_PORT" "$MERIDIAN_PORT" "$GDNSD_PORT"
geo_make_world "$tmp"

mdir="$tmp/meridian"
gdir="$tmp/gdnsd"
geo_write_meridian "$mdir" "$ADDR:$MERIDIAN_PORT" "$WORLD_MMDB"
geo_write_gdnsd "$gdir" "$ADDR:$GDNSD_PORT" "$WORLD_MMDB"
"$MERIDIAN_BIN" check --config "$mdir/meridian.toml" >"$tmp/meridian-check.log" 2>&1 ||
    { cat "$tmp/meridian-check.log" >&2; die "meridian check failed"; }
m_map_line="$(grep -m1 '^map world:' "$tmp/meridian-check.log" || true)"
gdnsd_checkconf "$gdir" "$tmp/gdnsd-checkconf.log"
g_map_line="$(sed -n "s/.*plugin_geoip: \(map 'world' runtime db updated.*\)/\1/p" "$tmp/gdnsd-checkconf.log" | head -n1)"

# ---------------------------------------------------------------- client subnets
# first_net CC V: the first network of country CC in the CSV, IPv4 (V=4) of
# length <= 16 (else <= 24), or IPv6 (V=6) of length <= 32.
first_net() {
    awk -F, -v cc="$1" -v v="$2" '
        $3 != cc { next }
        v == 4 && $1 !~ /:/ { split($1, a, "/"); if (a[2] <= 16) { print $1; found = 1; exit } if (!fb && a[2] <= 24) fb = $1 }
        v == 6 && $1 ~ /:/  { split($1, a, "/"); if (a[2] <= 32) { print $1; found = 1; exit } }
        END { if (!found && fb) print fb }' "$WORLD_CSV"
}
ecs_of() { # ecs_of NET V: first /24 (v4) or /48 (v6) of NET
    local addr="${1%/*}"
    if [[ "$2" == 4 ]]; then
        printf '%s/%s' "${addr%.*}.0" "$ECS_V4_SOURCE"
    else
        printf '%s/%s' "$addr" "$ECS_V6_SOURCE"
    fi
}
declare -a load_subnets=()
for cc in "${countries[@]}"; do
    net="$(first_net "$cc" 4)"
    [[ -n "$net" ]] || die "no IPv4 network for country $cc in the world database input"
    load_subnets+=("$(ecs_of "$net" 4)")
done

# Checks: the load countries, the other continents, IPv6, zero ECS, no ECS.
declare -a chk_label=() chk_subnet=() chk_expect=()
add_check() { chk_label+=("$1") chk_subnet+=("$2") chk_expect+=("$3"); }
expect_for_cc() {
    local cont="${CC_CONTINENT[$1]:-}" first
    [[ -n "$cont" ]] || { printf '?'; return 0; }
    read -r first _ <<<"${GEO_RULES[$cont]}"
    printf '%s' "${GEO_ADDR[$first]}"
}
for i in "${!countries[@]}"; do
    add_check "${countries[i]} (load)" "${load_subnets[i]}" "$(expect_for_cc "${countries[i]}")"
done
for cc in GB US BR JP ZA AU; do
    [[ " ${countries[*]} " == *" $cc "* ]] && continue
    net="$(first_net "$cc" 4)"
    [[ -n "$net" ]] && add_check "$cc" "$(ecs_of "$net" 4)" "$(expect_for_cc "$cc")"
done
net="$(first_net DE 6)"
[[ -n "$net" ]] && add_check "DE IPv6" "$(ecs_of "$net" 6)" "$(expect_for_cc DE)"
default_first="${GEO_DEFAULT_ORDER[0]}"
add_check "ECS 0/0" "0.0.0.0/0" "${GEO_ADDR[$default_first]}"
add_check "no ECS" "-" "${GEO_ADDR[$default_first]}"

# ---------------------------------------------------------------- query data
qfile="$tmp/www.txt"
echo "$GEO_SERVICE A" >"$qfile"
blob="$tmp/queries.blob"
python3 "$tmp/ecs.py" blob "$blob" "$GEO_SERVICE" "${load_subnets[@]}"
declare -a ecs_hex=()
for s in "${load_subnets[@]}"; do ecs_hex+=("$(python3 "$tmp/ecs.py" hex "$s")"); done

# ---------------------------------------------------------------- start servers
start_meridian "$mdir/meridian.toml"
start_gdnsd "$gdir"
wait_soa kdig "$GEO_ZONE" meridian "$meridian_pid" "$MERIDIAN_PORT" "$tmp/meridian.log"
wait_soa kdig "$GEO_ZONE" gdnsd "$gdnsd_pid" "$GDNSD_PORT" "$tmp/gdnsd.log"
mem_of() { # mem_of PID: "VmRSS X MiB (peak VmHWM Y MiB)"
    awk '/^VmRSS:/ { r = $2 } /^VmHWM:/ { h = $2 }
        END { printf "RSS %.1f MiB (peak %.1f MiB)", r / 1024, h / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"
}
m_mem_start="$(mem_of "$meridian_pid")"
g_mem_start="$(mem_of "$gdnsd_pid")"
gdnsd_threads="$(gdnsd_threads "$tmp/gdnsd.log")"
ncpu="$(nproc 2>/dev/null || echo '?')"

# ---------------------------------------------------------------- sanity check
mismatch=0
warn_each() { warn_box "${@/#/WARNING: }"; } # every line a warning
declare -a chk_lines=()
for i in "${!chk_label[@]}"; do
    a_m="$(geo_answer "$MERIDIAN_PORT" "${chk_subnet[i]}")"
    a_g="$(geo_answer "$GDNSD_PORT" "${chk_subnet[i]}")"
    rec_m="${a_m% scope=*}" rec_g="${a_g% scope=*}"
    addr_m="${rec_m#*a=}"
    note=""
    if [[ "$rec_m" != "$rec_g" ]]; then
        mismatch=1
        note="MISMATCH"
        warn_each "meridian and gdnsd answer $GEO_SERVICE A differently for ${chk_label[i]} (ECS ${chk_subnet[i]})" \
            "meridian: $a_m" "gdnsd:    $a_g"
    elif [[ "${chk_expect[i]}" != "?" && "$addr_m" != "${chk_expect[i]}" ]]; then
        note="both differ from expected ${chk_expect[i]}"
        warn_each "both servers answer ${chk_label[i]} (ECS ${chk_subnet[i]}) with $addr_m, expected ${chk_expect[i]}"
    elif [[ "${a_m##*scope=}" != "${a_g##*scope=}" ]]; then
        note="same answer, ECS scope differs"
    else
        note="same"
    fi
    chk_lines+=("$(printf '  %-12s %-20s meridian %-14s (%-2s, scope %3s)  gdnsd %-14s (%-2s, scope %3s)  %s' \
        "${chk_label[i]}" "${chk_subnet[i]}" "$addr_m" "$(region_of_addr "$addr_m")" "${a_m##*scope=}" \
        "${rec_g#*a=}" "$(region_of_addr "${rec_g#*a=}")" "${a_g##*scope=}" "$note")")
    log "check ${chk_label[i]} ${chk_subnet[i]}: meridian [$a_m] gdnsd [$a_g] $note"
done
# The load packets themselves (the -B datafile, whose ECS bytes are also the -E values).
mapfile -t probe_m < <(python3 "$tmp/ecs.py" probe "$ADDR" "$MERIDIAN_PORT" "$blob")
mapfile -t probe_g < <(python3 "$tmp/ecs.py" probe "$ADDR" "$GDNSD_PORT" "$blob")
declare -A load_addrs=()
for i in "${!load_subnets[@]}"; do
    want="$(geo_answer "$MERIDIAN_PORT" "${load_subnets[i]}")"
    want="${want% scope=*}"
    if [[ "${probe_m[i]:-}" != "$want" || "${probe_g[i]:-}" != "$want" ]]; then
        mismatch=1
        warn_each "load packet for ${countries[i]} (${load_subnets[i]}) is not answered like kdig's" \
            "kdig/meridian: $want" "packet->meridian: ${probe_m[i]:-none}" "packet->gdnsd:    ${probe_g[i]:-none}"
    fi
    load_addrs["${want#*a=}"]=1
done
if ((${#load_addrs[@]} < ${#countries[@]})); then
    log "note: the ${#countries[@]} load countries get only ${#load_addrs[@]} distinct answer(s)"
fi
if ((mismatch)); then
    log "WARNING: answers differ; the QPS comparison below may not be apples to apples"
else
    log "the load packets are answered as kdig showed, by both servers"
fi

# ---------------------------------------------------------------- load
# run_load NAME PID PORT SECONDS OUTPREFIX: sets R_QPS (sum, rounded),
# R_LOST (sum), R_CPU (server CPU microseconds per completed query), R_RCODE
# (non-NOERROR responses, summed).
run_load() {
    local name="$1" pid="$2" port="$3" secs="$4" out="$5" t0 t1 rc i n c q f
    local qps_sum=0 lost_sum=0 done_sum=0 bad_sum=0
    local -a outs=()
    R_QPS="" R_LOST="" R_CPU="" R_RCODE=""
    kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) is no longer running"
    t0="$(cpu_ticks "$pid")"
    dnsperf_pids=()
    if [[ "$ECS_MODE" == mixed ]]; then
        outs=("$out.dnsperf")
        dnsperf -B -s "$ADDR" -p "$port" -d "$blob" -l "$secs" \
            -c "$CLIENTS" -q "$OUTSTANDING" -T 1 -t 2 >"${outs[0]}" 2>&1 &
        dnsperf_pids+=($!)
    else
        n=${#countries[@]}
        for ((i = 0; i < n; i++)); do
            c=$((CLIENTS / n + (i < CLIENTS % n ? 1 : 0)))
            q=$((OUTSTANDING / n + (i < OUTSTANDING % n ? 1 : 0)))
            outs+=("$out.${countries[i]}.dnsperf")
            dnsperf -E "8:${ecs_hex[i]}" -s "$ADDR" -p "$port" -d "$qfile" -l "$secs" \
                -c "$c" -q "$q" -T 1 -t 2 >"${outs[i]}" 2>&1 &
            dnsperf_pids+=($!)
        done
    fi
    rc=0
    for i in "${!dnsperf_pids[@]}"; do
        wait "${dnsperf_pids[i]}" || rc=$?
    done
    dnsperf_pids=()
    t1="$(cpu_ticks "$pid")"
    kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) died during the dnsperf run"
    ((rc == 0)) || { cat "${outs[@]}" >&2; die "dnsperf against $name failed (exit $rc)"; }
    for f in "${outs[@]}"; do
        parse_dnsperf "$name" "$f"
        qps_sum="$(awk -v a="$qps_sum" -v b="$D_QPS" 'BEGIN { printf "%.3f", a + b }')"
        lost_sum=$((lost_sum + D_LOST))
        done_sum=$((done_sum + D_DONE))
        bad_sum=$((bad_sum + D_DONE - ${D_NOERR:-0}))
    done
    R_QPS="$(printf '%.0f' "$qps_sum")"
    R_LOST="$lost_sum"
    R_RCODE="$bad_sum"
    R_CPU="$(cpu_us_per "$((t1 - t0))" "$done_sum")"
    ((bad_sum == 0)) || log "WARNING: $name: $bad_sum responses were not NOERROR (see ${outs[0]})"
}

if ((WARMUP > 0)); then
    log "warm-up: ${WARMUP}s per server (not measured)"
    run_load meridian "$meridian_pid" "$MERIDIAN_PORT" "$WARMUP" "$tmp/warmup-meridian"
    run_load gdnsd "$gdnsd_pid" "$GDNSD_PORT" "$WARMUP" "$tmp/warmup-gdnsd"
fi

declare -a m_qps=() g_qps=() m_lost=() g_lost=() m_cpu=() g_cpu=()
bad_rcodes=0
for ((r = 1; r <= ROUNDS; r++)); do
    if ((r % 2)); then order=(meridian gdnsd); else order=(gdnsd meridian); fi
    for s in "${order[@]}"; do
        log "round $r/$ROUNDS: dnsperf ($ECS_MODE ECS) -> $s for ${DURATION}s"
        if [[ "$s" == meridian ]]; then
            run_load meridian "$meridian_pid" "$MERIDIAN_PORT" "$DURATION" "$tmp/r$r-meridian"
            m_qps+=("$R_QPS") m_lost+=("$R_LOST") m_cpu+=("$R_CPU")
        else
            run_load gdnsd "$gdnsd_pid" "$GDNSD_PORT" "$DURATION" "$tmp/r$r-gdnsd"
            g_qps+=("$R_QPS") g_lost+=("$R_LOST") g_cpu+=("$R_CPU")
        fi
        bad_rcodes=$((bad_rcodes + R_RCODE))
    done
done
((${#m_qps[@]} == ROUNDS && ${#g_qps[@]} == ROUNDS)) || die "missing results (a dnsperf run failed)"

m_mem_end="$(mem_of "$meridian_pid")"
g_mem_end="$(mem_of "$gdnsd_pid")"

m_med="$(median 2 "${m_qps[@]}")"
g_med="$(median 2 "${g_qps[@]}")"
ratio="$(ratio "$m_med" "$g_med")"

# ---------------------------------------------------------------- report
if [[ "$ECS_MODE" == mixed ]]; then
    load_desc="1 process, -B datafile of ${#countries[@]} ECS queries (one per country, interleaved), -c $CLIENTS -q $OUTSTANDING -T 1"
else
    load_desc="${#countries[@]} processes in parallel (one per country, -E 8:<ECS>), -c/-q $CLIENTS/$OUTSTANDING split, -T 1 each"
fi
echo
echo "Meridian vs gdnsd, UDP, geo-steered $GEO_SERVICE A with ECS (/$ECS_V4_SOURCE) from: ${countries[*]}"
echo "  host:     $ncpu CPU(s), servers and dnsperf share them"
echo "  database: $WORLD_BUILD_LINE"
echo "  map:      ${#GEO_CONTINENTS[@]} continent rules (${GEO_CONTINENTS[*]}) + default"
echo "            meridian: ${m_map_line:-?}"
echo "            gdnsd:    ${g_map_line:-?}"
echo "  dnsperf:  $(dnsperf_version) $load_desc, -l $DURATION, $ROUNDS round(s) per server, alternating"
echo "  meridian: $MERIDIAN_BIN on $ADDR:$MERIDIAN_PORT (default workers = core count = $ncpu)"
echo "  gdnsd:    $(gdnsd_version) on $ADDR:$GDNSD_PORT (default threads: ${gdnsd_threads:-unknown})"
echo "  memory:   meridian $m_mem_start after start-up, $m_mem_end after the load"
echo "            gdnsd    $g_mem_start after start-up, $g_mem_end after the load"
echo
echo "Answers ($GEO_SERVICE A; region in brackets; ECS scope as returned):"
printf '%s\n' "${chk_lines[@]}"
echo
qps_table meridian_qps m gdnsd_qps g
echo
echo "ratio median(meridian)/median(gdnsd) = $ratio   (>1 means meridian is faster)"
echo "cpu_us/q = server CPU time (all threads) per completed query; lower is better."
if ((mismatch)); then
    echo "WARNING: the servers' answers differed in the sanity check (see above)."
fi
if ((bad_rcodes > 0)); then
    echo "WARNING: $bad_rcodes responses in measured rounds were not NOERROR."
fi
printf 'RESULT udp-geo meridian_qps=%.0f gdnsd_qps=%.0f ratio=%s\n' "$m_med" "$g_med" "$ratio"
