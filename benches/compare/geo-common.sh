# shellcheck shell=bash
# Shared parts of geo-compile.sh and geo-vs-gdnsd.sh: the world database
# (tor-geoipdb -> locations CSV -> world.mmdb) and equivalent Meridian and
# gdnsd geo configurations. Sourced, not executed, after lib.sh (log, die,
# need_tool, zone_head, gdnsd_options); the caller sets SCRIPT_DIR and
# MERIDIAN_BIN (meridian_build).

# ---------------------------------------------------------------- the map
# Regions (Meridian) = datacenters (gdnsd). DEFAULT_ORDER is the order for
# clients with no known continent (and gdnsd's `datacenters` list).
GEO_DEFAULT_ORDER=(na eu as sa af oc)
# Continent rules: continent code -> ordered regions. Each continent's first
# region is different, so the answer tells which rule matched.
GEO_CONTINENTS=(EU NA SA AS AF OC)
declare -A GEO_RULES=(
    [EU]="eu na as af sa oc"
    [NA]="na eu sa as oc af"
    [SA]="sa na eu af as oc"
    [AS]="as oc eu na af sa"
    [AF]="af eu as na sa oc"
    [OC]="oc as na eu sa af"
)
# One IPv4 address per region (documentation range, never routed).
declare -A GEO_ADDR=(
    [eu]=192.0.2.1
    [na]=192.0.2.2
    [sa]=192.0.2.3
    [as]=192.0.2.4
    [af]=192.0.2.5
    [oc]=192.0.2.6
)
GEO_ZONE=geo.bench
GEO_SERVICE="www.$GEO_ZONE"

TOR_GEOIP="${TOR_GEOIP:-/usr/share/tor/geoip}"
TOR_GEOIP6="${TOR_GEOIP6:-/usr/share/tor/geoip6}"

# geo_missing_pkgs: records (need_tool) the Debian packages needed by both
# scripts.
geo_missing_pkgs() {
    [[ -r "$TOR_GEOIP" && -r "$TOR_GEOIP6" ]] || missing_pkgs+=(tor-geoipdb)
    need_tool gdnsd gdnsd
    need_tool python3 python3
}

# geo_elapsed START: seconds since START (an $EPOCHREALTIME value), 3 decimals.
geo_elapsed() {
    awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'
}

# geo_make_world DIR: writes DIR/world.csv and DIR/world.mmdb from the
# tor-geoipdb files. Sets WORLD_CSV, WORLD_MMDB, WORLD_CONVERT_S,
# WORLD_BUILD_S, WORLD_CONVERT_LINE (converter counts), WORLD_BUILD_LINE
# (meridian geo build's summary).
geo_make_world() {
    local dir="$1" t0
    WORLD_CSV="$dir/world.csv"
    WORLD_MMDB="$dir/world.mmdb"
    log "converting $TOR_GEOIP + $TOR_GEOIP6 -> $(basename "$WORLD_CSV")"
    t0="$EPOCHREALTIME"
    timeout 600 python3 "$SCRIPT_DIR/tor-geoip-to-csv.py" --geoip "$TOR_GEOIP" --geoip6 "$TOR_GEOIP6" \
        --out "$WORLD_CSV" 2>"$dir/convert.log" ||
        { cat "$dir/convert.log" >&2; die "tor-geoip-to-csv.py failed"; }
    WORLD_CONVERT_S="$(geo_elapsed "$t0")"
    WORLD_CONVERT_LINE="$(tail -n1 "$dir/convert.log")"
    log "$WORLD_CONVERT_LINE (${WORLD_CONVERT_S}s)"
    log "building $(basename "$WORLD_MMDB"): $MERIDIAN_BIN geo build --from world.csv --out world.mmdb"
    t0="$EPOCHREALTIME"
    timeout 600 "$MERIDIAN_BIN" geo build --from "$WORLD_CSV" --out "$WORLD_MMDB" >"$dir/geo-build.log" 2>&1 ||
        { cat "$dir/geo-build.log" >&2; die "meridian geo build failed"; }
    WORLD_BUILD_S="$(geo_elapsed "$t0")"
    [[ -s "$WORLD_MMDB" ]] || die "meridian geo build wrote no $WORLD_MMDB"
    WORLD_BUILD_LINE="$(grep -m1 'networks' "$dir/geo-build.log" || tail -n1 "$dir/geo-build.log")"
    log "$WORLD_BUILD_LINE (${WORLD_BUILD_S}s)"
}

# The static part of the zone, shared by both servers.
geo_zone_static() { zone_head "$GEO_ZONE"; }

# geo_quote_list "a b c" -> "a", "b", "c" (a TOML list body)
geo_quote_list() {
    local out="" x
    for x in $1; do out+="${out:+, }\"$x\""; done
    printf '%s' "$out"
}

# geo_write_meridian DIR LISTEN MMDB: DIR/meridian.toml + DIR/zones/geo.bench.zone
geo_write_meridian() {
    local dir="$1" listen="$2" mmdb="$3" r c list
    mkdir -p "$dir/zones"
    geo_zone_static >"$dir/zones/$GEO_ZONE.zone"
    {
        echo "[dns]"
        echo "listen = [\"$listen\"]"
        echo "zones_dir = \"zones\""
        echo
        echo "[geo]"
        echo "databases = [\"$mmdb\"]"
        echo
        for r in "${GEO_DEFAULT_ORDER[@]}"; do echo "[regions.$r]"; done
        echo
        echo "[maps.world]"
        echo "default = [$(geo_quote_list "${GEO_DEFAULT_ORDER[*]}")]"
        for c in "${GEO_CONTINENTS[@]}"; do
            list="$(geo_quote_list "${GEO_RULES[$c]}")"
            echo "\"$c\" = [$list]"
        done
        echo
        echo "[services.\"$GEO_SERVICE\"]"
        echo "map = \"world\""
        echo "ttl = 30"
        for r in "${GEO_DEFAULT_ORDER[@]}"; do echo "answers.$r = [\"${GEO_ADDR[$r]}\"]"; done
    } >"$dir/meridian.toml"
}

# geo_write_gdnsd DIR LISTEN MMDB: DIR/config + DIR/zones/geo.bench, with
# run_dir and state_dir inside DIR (gdnsd then touches nothing in /run or
# /var/lib and runs as whoever starts it).
geo_write_gdnsd() {
    local dir="$1" listen="$2" mmdb="$3" r c
    mkdir -p "$dir/zones" "$dir/run" "$dir/state"
    {
        geo_zone_static
        echo "www  30 DYNA geoip!www"
    } >"$dir/zones/$GEO_ZONE"
    {
        gdnsd_options "$listen" "$dir"
        echo "plugins => {"
        echo "  geoip => {"
        echo "    maps => {"
        echo "      world => {"
        echo "        geoip2_db => \"$mmdb\""
        echo "        datacenters => [ ${GEO_DEFAULT_ORDER[*]} ]"
        echo "        map => {"
        echo "          default => [ ${GEO_DEFAULT_ORDER[*]} ]"
        for c in "${GEO_CONTINENTS[@]}"; do echo "          $c => [ ${GEO_RULES[$c]} ]"; done
        echo "        }"
        echo "      }"
        echo "    }"
        echo "    resources => {"
        echo "      www => {"
        echo "        map => world"
        echo "        dcmap => {"
        for r in "${GEO_DEFAULT_ORDER[@]}"; do echo "          $r => ${GEO_ADDR[$r]}"; done
        echo "        }"
        echo "      }"
        echo "    }"
        echo "  }"
        echo "}"
    } >"$dir/config"
}
