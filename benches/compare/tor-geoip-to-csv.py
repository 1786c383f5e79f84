#!/usr/bin/env python3
"""Convert Debian's tor-geoipdb files into Meridian's locations CSV.

Input (package `tor-geoipdb`):
  /usr/share/tor/geoip   lines `FROM_INT,TO_INT,CC`        (IPv4, inclusive range)
  /usr/share/tor/geoip6  lines `FROM_IPV6,TO_IPV6,CC`      (IPv6, inclusive range)
  `#` comment lines and blank lines are ignored.

Output: `network,continent,country,subdivision,city,latitude,longitude,asn`
with one line per CIDR block: every range becomes its minimal CIDR list
(ipaddress.summarize_address_range). The continent column is left empty so
that `meridian geo build` derives it from the country, except for the
non-ISO codes the data also uses (EU, AP, UK, CS, AN), which `geo build`
cannot place: they get the continent MaxMind gives such registrations
(EU -> EU, AP -> AS, UK -> EU, CS -> EU, AN -> NA). Ranges whose country is
`??` or empty are skipped. Counts go to stderr.

Usage:
  tor-geoip-to-csv.py [--geoip FILE] [--geoip6 FILE] [--out FILE|-]

Python 3 standard library only.
"""

import argparse
import ipaddress
import re
import sys
from collections import Counter

HEADER = "network,continent,country,subdivision,city,latitude,longitude,asn"
CC_RE = re.compile(r"^[A-Za-z]{2}$")
# Non-ISO 3166-1 codes in the tor/IPFire data -> continent.
MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
LEGACY_CONTINENT = {"EU": "EU", "AP": "AS", "UK": "EU", "CS": "EU", "AN": "NA"}


class InputError(Exception):
    pass


def parse_addr(text, v6, path, lineno):
    try:
        if v6:
            addr = ipaddress.IPv6Address(text)
        else:
            # geoip (v4) uses decimal integers; accept dotted quads as well.
            addr = ipaddress.IPv4Address(int(text) if text.isdigit() else text)
    except (ValueError, ipaddress.AddressValueError) as e:
        raise InputError(f"{path}:{lineno}: bad address {text!r}: {e}") from None
    return addr


def convert(path, v6, out, stats):
    """Converts one tor geoip file, writing CSV lines to `out`."""
    fam = "v6" if v6 else "v4"
    with open(path, encoding="ascii", errors="strict") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = [p.strip() for p in line.split(",")]
            if len(parts) != 3:
                raise InputError(f"{path}:{lineno}: expected FROM,TO,CC, got {line!r}")
            first = parse_addr(parts[0], v6, path, lineno)
            last = parse_addr(parts[1], v6, path, lineno)
            cc = parts[2].upper()
            stats[f"ranges_{fam}"] += 1
            if cc in ("", "??"):
                stats[f"skipped_{fam}"] += 1
                continue
            if not CC_RE.match(cc):
                raise InputError(f"{path}:{lineno}: bad country code {parts[2]!r}")
            if last < first:
                raise InputError(f"{path}:{lineno}: range end {last} before start {first}")
            # Meridian refuses IPv4-mapped IPv6 prefixes (::ffff:0:0/96); IPv4
            # data comes from the geoip file anyway.
            touches_mapped = v6 and first <= MAPPED.broadcast_address and last >= MAPPED.network_address
            continent = LEGACY_CONTINENT.get(cc, "")
            if continent:
                stats["legacy_ranges"] += 1
            for net in ipaddress.summarize_address_range(first, last):
                if touches_mapped and net.subnet_of(MAPPED):
                    stats["skipped_v4mapped"] += 1
                    continue
                out.write(f"{net},{continent},{cc},,,,,\n")
                stats[f"networks_{fam}"] += 1
            stats["countries"].add(cc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--geoip", default="/usr/share/tor/geoip", help="IPv4 file (default %(default)s)")
    ap.add_argument("--geoip6", default="/usr/share/tor/geoip6", help="IPv6 file (default %(default)s)")
    ap.add_argument("--no-v6", action="store_true", help="skip the IPv6 file")
    ap.add_argument("--out", default="-", help="output CSV (default: stdout)")
    args = ap.parse_args()

    stats = Counter()
    stats["countries"] = set()
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="ascii", newline="\n")
    try:
        out.write(HEADER + "\n")
        convert(args.geoip, False, out, stats)
        if not args.no_v6:
            convert(args.geoip6, True, out, stats)
    except (OSError, InputError) as e:
        print(f"tor-geoip-to-csv: error: {e}", file=sys.stderr)
        return 1
    finally:
        if out is not sys.stdout:
            out.close()

    nets = stats["networks_v4"] + stats["networks_v6"]
    print(
        "tor-geoip-to-csv: "
        f"IPv4 {stats['ranges_v4']} ranges ({stats['skipped_v4']} skipped '??') -> {stats['networks_v4']} networks; "
        f"IPv6 {stats['ranges_v6']} ranges ({stats['skipped_v6']} skipped '??'"
        + (f", {stats['skipped_v4mapped']} IPv4-mapped networks" if stats["skipped_v4mapped"] else "")
        + f") -> {stats['networks_v6']} networks; "
        f"total {nets} networks, {len(stats['countries'])} country codes "
        f"({stats['legacy_ranges']} ranges with non-ISO codes {'/'.join(LEGACY_CONTINENT)} given a continent)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
