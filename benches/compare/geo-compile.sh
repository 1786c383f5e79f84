#!/usr/bin/env bash
# Compare how long Meridian and gdnsd 3.x take, and how much memory they use,
# to load a world-wide GeoIP database and compile one continent map from it.
#
# The world database comes from Debian's tor-geoipdb (IPFire location data,
# country level, IPv4 + IPv6): tor-geoip-to-csv.py turns it into Meridian's
# locations CSV, and `meridian geo build` turns that into world.mmdb (a
# GeoIP2-City-shaped MaxMind DB). Both servers then load that same file with
# an equivalent map (six continent rules + default, one service):
#   meridian check --config meridian.toml     (loads everything like `serve`)
#   gdnsd -c DIR checkconf                     (geoip plugin, DYNA resource)
# Each is run ROUNDS times, alternating, under /usr/bin/time -f "%e %M ...".
# Prints per-round and median wall time and peak RSS, the ratios
# meridian/gdnsd, and a final line:
#   RESULT geo-compile meridian_s=... gdnsd_s=... time_ratio=... meridian_kb=... gdnsd_kb=... mem_ratio=...
# Times in the RESULT line are the high-resolution wall clock (bash
# $EPOCHREALTIME around /usr/bin/time), because %e has 10 ms steps.
#
# Environment:
#   ROUNDS        measured runs per program (default 5)
#   MERIDIAN_BIN  use this meridian binary instead of `cargo build --release`
#   TOR_GEOIP     IPv4 tor geoip file  (default /usr/share/tor/geoip)
#   TOR_GEOIP6    IPv6 tor geoip file  (default /usr/share/tor/geoip6)
#   KEEP_TMP=1    keep the temporary directory (CSV, mmdb, configs, logs)
#
# Nothing listens and no traffic is sent: `check`/`checkconf` only load.
# Exit codes: 0 ok, 1 failure, 2 missing tools / bad arguments.
set -euo pipefail

ROUNDS="${ROUNDS:-5}"
LISTEN_M=127.0.0.1:15353 # written into the configs; checks never bind it
LISTEN_G=127.0.0.1:15354
STEP_TIMEOUT=600 # seconds; bounds every measured command

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

# shellcheck source=SCRIPTDIR/lib.sh disable=SC1091
. "$SCRIPT_DIR/lib.sh"
# shellcheck source=SCRIPTDIR/geo-common.sh disable=SC1091
. "$SCRIPT_DIR/geo-common.sh"

# ---------------------------------------------------------------- arguments
[[ "$ROUNDS" =~ ^[0-9]{1,3}$ ]] || usage_die "ROUNDS must be an integer 1..100 (got '$ROUNDS')"
ROUNDS=$((10#$ROUNDS))
require_range ROUNDS 1 100

# ---------------------------------------------------------------- tools
geo_missing_pkgs
[[ -x /usr/bin/time ]] || missing_pkgs+=(time) # GNU time, for %M (peak RSS)
need_tool timeout coreutils
exit_if_missing "tools or data"

# ---------------------------------------------------------------- temp dir + cleanup
child_pid=""
stop_children() { # the measured command, TERM and wait (`timeout` passes it on)
    if [[ -n "$child_pid" ]] && kill -0 "$child_pid" 2>/dev/null; then
        kill -TERM "$child_pid" 2>/dev/null
        wait "$child_pid" 2>/dev/null
    fi
}
make_tmp meridian-geo-compile

# ---------------------------------------------------------------- helpers
# run_timed NAME OUTFILE CMD...: runs CMD under `timeout` and /usr/bin/time
# (in the background, so the trap can stop it). Fails the script if CMD
# fails. Sets T_E (%e, s), T_RSS (%M, KiB), T_CPU (%U+%S, s), T_HI (s, 3
# decimals, $EPOCHREALTIME around the whole thing).
run_timed() {
    local name="$1" out="$2" t0 rc=0 line
    shift 2
    t0="$EPOCHREALTIME"
    timeout "$STEP_TIMEOUT" /usr/bin/time -o "$out.time" -f "%e %M %U %S" "$@" >"$out" 2>&1 &
    child_pid=$!
    wait "$child_pid" || rc=$?
    child_pid=""
    T_HI="$(geo_elapsed "$t0")"
    if ((rc != 0)); then
        cat "$out" >&2
        ((rc == 124)) && die "$name timed out after ${STEP_TIMEOUT}s"
        die "$name failed (exit $rc): $*"
    fi
    line="$(tail -n1 "$out.time")" # GNU time may prefix "Command exited with ..."
    read -r T_E T_RSS T_USER T_SYS <<<"$line"
    [[ "$T_E" =~ ^[0-9.]+$ && "$T_RSS" =~ ^[0-9]+$ ]] || die "could not parse /usr/bin/time output for $name: '$line'"
    T_CPU="$(awk -v u="$T_USER" -v s="$T_SYS" 'BEGIN { printf "%.2f", u + s }')"
}

# ---------------------------------------------------------------- meridian + world.mmdb
meridian_build
geo_make_world "$tmp"

mdir="$tmp/meridian"
gdir="$tmp/gdnsd"
geo_write_meridian "$mdir" "$LISTEN_M" "$WORLD_MMDB"
geo_write_gdnsd "$gdir" "$LISTEN_G" "$WORLD_MMDB"
M_CMD=("$MERIDIAN_BIN" check --config "$mdir/meridian.toml")
G_CMD=(gdnsd -c "$gdir" checkconf)

# ---------------------------------------------------------------- sanity checks
# 1. Both load the real map (first run also warms the page cache).
run_timed "meridian check" "$tmp/sanity-meridian.out" "${M_CMD[@]}"
m_map_line="$(grep -m1 '^map world:' "$tmp/sanity-meridian.out" || true)"
[[ -n "$m_map_line" ]] || { cat "$tmp/sanity-meridian.out" >&2; die "meridian check did not report 'map world: N prefixes'"; }
log "meridian: $m_map_line"
run_timed "gdnsd checkconf" "$tmp/sanity-gdnsd.out" "${G_CMD[@]}"
g_map_line="$(grep -m1 "map 'world' runtime db updated" "$tmp/sanity-gdnsd.out" || true)"
[[ -n "$g_map_line" ]] || { cat "$tmp/sanity-gdnsd.out" >&2; die "gdnsd checkconf did not report loading map 'world'"; }
g_map_line="${g_map_line#*plugin_geoip: }"
log "gdnsd:    $g_map_line"

# 2. Both fail on a missing database, so checkconf really loads the map.
broken="$tmp/broken"
geo_write_meridian "$broken/meridian" "$LISTEN_M" "$tmp/no-such.mmdb"
geo_write_gdnsd "$broken/gdnsd" "$LISTEN_G" "$tmp/no-such.mmdb"
if timeout 120 "$MERIDIAN_BIN" check --config "$broken/meridian/meridian.toml" >"$broken/meridian.out" 2>&1; then
    die "meridian check succeeded with a missing database: the map is not loaded by check"
fi
if timeout 120 gdnsd -c "$broken/gdnsd" checkconf >"$broken/gdnsd.out" 2>&1; then
    die "gdnsd checkconf succeeded with a missing geoip2_db: the map is not loaded by checkconf"
fi
log "both fail on a missing database (gdnsd: $(grep -m1 -iE 'error|fatal' "$broken/gdnsd.out" | cut -c1-140))"

# 3. Baseline: the same programs with the same zone but no geo at all, once
#    each, to tell start-up memory from the map's.
base="$tmp/baseline"
mkdir -p "$base/meridian/zones" "$base/gdnsd/zones" "$base/gdnsd/run" "$base/gdnsd/state"
geo_zone_static >"$base/meridian/zones/$GEO_ZONE.zone"
geo_zone_static >"$base/gdnsd/zones/$GEO_ZONE"
printf '[dns]\nlisten = ["%s"]\nzones_dir = "zones"\n' "$LISTEN_M" >"$base/meridian/meridian.toml"
gdnsd_options "$LISTEN_G" "$base/gdnsd" >"$base/gdnsd/config"
run_timed "meridian check (no geo)" "$base/meridian.out" "$MERIDIAN_BIN" check --config "$base/meridian/meridian.toml"
base_m="${T_RSS} KiB, ${T_HI}s"
run_timed "gdnsd checkconf (no geo)" "$base/gdnsd.out" gdnsd -c "$base/gdnsd" checkconf
base_g="${T_RSS} KiB, ${T_HI}s"
log "baseline without geo: meridian $base_m; gdnsd $base_g"

# ---------------------------------------------------------------- measure
declare -a m_e=() m_hi=() m_rss=() m_cpu=() g_e=() g_hi=() g_rss=() g_cpu=()
for ((r = 1; r <= ROUNDS; r++)); do
    if ((r % 2)); then order=(meridian gdnsd); else order=(gdnsd meridian); fi
    for s in "${order[@]}"; do
        if [[ "$s" == meridian ]]; then
            run_timed "meridian check" "$tmp/r$r-meridian.out" "${M_CMD[@]}"
            m_e+=("$T_E") m_hi+=("$T_HI") m_rss+=("$T_RSS") m_cpu+=("$T_CPU")
        else
            run_timed "gdnsd checkconf" "$tmp/r$r-gdnsd.out" "${G_CMD[@]}"
            g_e+=("$T_E") g_hi+=("$T_HI") g_rss+=("$T_RSS") g_cpu+=("$T_CPU")
        fi
        log "round $r/$ROUNDS: $s ${T_HI}s (time %e ${T_E}s), peak RSS ${T_RSS} KiB, CPU ${T_CPU}s"
    done
done

m_hi_med="$(median 3 "${m_hi[@]}")"
g_hi_med="$(median 3 "${g_hi[@]}")"
m_e_med="$(median 2 "${m_e[@]}")"
g_e_med="$(median 2 "${g_e[@]}")"
m_rss_med="$(median 0 "${m_rss[@]}")"
g_rss_med="$(median 0 "${g_rss[@]}")"
m_cpu_med="$(median 2 "${m_cpu[@]}")"
g_cpu_med="$(median 2 "${g_cpu[@]}")"
time_ratio="$(ratio "$m_hi_med" "$g_hi_med")"
mem_ratio="$(ratio "$m_rss_med" "$g_rss_med")"

# ---------------------------------------------------------------- report
echo
echo "Meridian vs gdnsd: load world.mmdb and compile one continent map"
echo "  input:    $WORLD_CONVERT_LINE"
echo "            (tor-geoip-to-csv.py ${WORLD_CONVERT_S}s)"
echo "  database: $WORLD_BUILD_LINE (meridian geo build ${WORLD_BUILD_S}s)"
echo "  map:      ${#GEO_CONTINENTS[@]} continent rules (${GEO_CONTINENTS[*]}) + default, 1 service"
echo "  meridian: $m_map_line"
echo "  gdnsd:    $g_map_line"
echo "  commands: meridian check --config meridian.toml | gdnsd -c DIR checkconf"
echo "            $ROUNDS round(s) each, alternating, after one unmeasured run each"
echo "  baseline: same zone, no geo: meridian $base_m; gdnsd $base_g (peak RSS, wall)"
echo
printf '%-6s | %8s %7s %10s %6s | %8s %7s %10s %6s\n' round wall_s "time%e" peak_kb cpu_s wall_s "time%e" peak_kb cpu_s
printf '%-6s | %-34s | %-34s\n' "" "meridian check" "gdnsd checkconf"
printf '%s\n' "-------+------------------------------------+-----------------------------------"
for ((i = 0; i < ROUNDS; i++)); do
    printf '%-6s | %8s %7s %10s %6s | %8s %7s %10s %6s\n' "$((i + 1))" \
        "${m_hi[i]}" "${m_e[i]}" "${m_rss[i]}" "${m_cpu[i]}" "${g_hi[i]}" "${g_e[i]}" "${g_rss[i]}" "${g_cpu[i]}"
done
printf '%s\n' "-------+------------------------------------+-----------------------------------"
printf '%-6s | %8s %7s %10s %6s | %8s %7s %10s %6s\n' median \
    "$m_hi_med" "$m_e_med" "$m_rss_med" "$m_cpu_med" "$g_hi_med" "$g_e_med" "$g_rss_med" "$g_cpu_med"
echo
echo "time ratio meridian/gdnsd   = $time_ratio   (<1 means meridian loads faster)"
echo "memory ratio meridian/gdnsd = $mem_ratio   (peak RSS; <1 means meridian uses less)"
echo "wall_s: \$EPOCHREALTIME around /usr/bin/time (ms resolution); time%e: GNU time's own"
echo "wall clock (10 ms steps); cpu_s: user+sys. Both include process start-up and zone loading."
printf 'RESULT geo-compile meridian_s=%s gdnsd_s=%s time_ratio=%s meridian_kb=%s gdnsd_kb=%s mem_ratio=%s\n' \
    "$m_hi_med" "$g_hi_med" "$time_ratio" "$m_rss_med" "$g_rss_med" "$mem_ratio"
