#!/usr/bin/env python3
"""Make geodata/world-sample.csv: a small, aggregated world country database.

Input: Debian's `tor-geoipdb` package (the IPFire Location database, CC BY-SA 4.0):
  /usr/share/tor/geoip   lines `FROM_INT,TO_INT,CC`    (IPv4, inclusive ranges)
  /usr/share/tor/geoip6  lines `FROM_IPV6,TO_IPV6,CC`  (IPv6, inclusive ranges)

Output: Meridian's locations CSV
  network,continent,country,subdivision,city,latitude,longitude,asn
with the continent left empty (`meridian geo build` derives it from the country) except for
the non-ISO codes of the data (EU, AP, UK, CS, AN), which get the continent MaxMind gives them.

The full data has ~385,000 IPv4 and ~277,000 IPv6 ranges. This keeps a few thousand networks
that still place most addresses in the right country, by a top-down walk of the address tree:

* A network is labelled with the country that holds most of its allocated addresses, unless
  that is already the label it inherits from a shorter network. Overlapping networks are fine:
  `geo build` gives every address the most specific network that contains it.
* The walk goes down into a network only while the allocated addresses under it that its label
  gets wrong weigh at least THRESHOLD, and not below MAX_PREFIX. An IPv4 range weighs its
  number of addresses; an IPv6 range its number of /48s, at most a /32's worth (65536),
  because IPv6 allocations differ in size by many orders of magnitude.
* No network shorter than MIN_PREFIX is written, and no network that holds special-purpose
  space (SPECIAL_V4: private, shared, link-local, documentation, benchmarking; SPECIAL_V6:
  IETF protocol assignments such as Teredo, documentation, 6to4, unique local, link-local,
  NAT64, IPv4-mapped, multicast), so unallocated and special-purpose space (10/8,
  192.168/16, 127/8, multicast, 2001:db8::/32, fc00::/7, ...) stays unknown. Teredo and 6to4
  addresses embed an IPv4 address rather than belong to where their prefix is registered.
* Every country the data names that the walk did not keep gets its largest network, so every
  country is known somewhere.

Unallocated space inside a labelled network is labelled too: it routes nowhere, so no real
client is placed wrongly by it.

Usage:
  make-world-sample.py [--geoip FILE] [--geoip6 FILE] [--out FILE|-]

Python 3 standard library only; deterministic (the same input gives the same output).
"""

import argparse
import ipaddress
import sys
from collections import Counter

HEADER = "network,continent,country,subdivision,city,latitude,longitude,asn"
# Non-ISO 3166-1 codes in the data -> continent (as MaxMind places such registrations).
LEGACY_CONTINENT = {"EU": "EU", "AP": "AS", "UK": "EU", "CS": "EU", "AN": "NA"}

# Special-purpose IPv4 networks (RFC 6890) inside otherwise allocated /8s; no written network
# may contain them. (The /8s of 0, 10, 127 and 224-255 hold no data, so MIN_PREFIX keeps them.)
SPECIAL_V4 = [
    ipaddress.IPv4Network(net)
    for net in (
        "100.64.0.0/10",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
    )
]

# Special-purpose IPv6 networks (IANA IPv6 Special-Purpose Address Registry, RFC 6890 and
# later) that lie in or next to allocated space; no written network may contain or overlap
# them. (The data holds nothing below 2000::/3 except what these cover.)
SPECIAL_V6 = [
    ipaddress.IPv6Network(net)
    for net in (
        "::ffff:0:0/96",  # IPv4-mapped: Meridian refuses networks there (IPv4 data covers it)
        "64:ff9b::/96",  # NAT64 well-known prefix
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments: Teredo 2001::/32, benchmarking, ORCHID, ...
        "2001::/32",  # Teredo (inside 2001::/23; named for clarity)
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4
        "3fff::/20",  # documentation
        "5f00::/16",  # segment routing (SRv6) SIDs
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "ff00::/8",  # multicast
    )
]

# (bits, MIN_PREFIX, MAX_PREFIX, THRESHOLD, weight of a range's part of a network)
V4 = (32, 8, 24, 1 << 16, lambda count: count)
V6 = (128, 12, 32, 1 << 17, lambda count: min(max(count >> 80, 1), 1 << 16))


class InputError(Exception):
    """A line of the input that cannot be read; the message says where."""


def read_ranges(path, v6):
    """The (first, last, country) ranges of one tor geoip file, sorted; `??` skipped."""
    ranges = []
    with open(path, encoding="ascii") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = [p.strip() for p in line.split(",")]
            if len(parts) != 3:
                raise InputError(f"{path}:{lineno}: expected FROM,TO,CC, got {line!r}")
            try:
                if v6:
                    first = int(ipaddress.IPv6Address(parts[0]))
                    last = int(ipaddress.IPv6Address(parts[1]))
                else:
                    first, last = int(parts[0]), int(parts[1])
            except ValueError as e:
                raise InputError(f"{path}:{lineno}: bad address: {e}") from None
            cc = parts[2].upper()
            if cc in ("", "??"):
                continue
            if len(cc) != 2 or not cc.isalpha() or last < first:
                raise InputError(f"{path}:{lineno}: bad range or country {line!r}")
            ranges.append((first, last, cc))
    ranges.sort()
    return ranges


def walk(ranges, family):
    """The labelled networks (first, prefix, country) the top-down walk keeps."""
    bits, min_prefix, max_prefix, threshold, weight = family
    kept = []

    special = [
        (int(n.network_address), int(n.broadcast_address))
        for n in (SPECIAL_V6 if bits == 128 else SPECIAL_V4)
    ]

    def visit(low, prefix, inside, label):
        size = 1 << (bits - prefix)
        high = low + size - 1
        if any(first <= low and high <= last for first, last in special):
            return
        holds_special = any(low <= first and last <= high for first, last in special)
        counts = Counter()
        for first, last, cc in inside:
            counts[cc] += weight(min(last, high) - max(first, low) + 1)
        wrong = sum(counts.values()) - counts.get(label, 0)
        if wrong == 0 or (wrong < threshold and prefix >= min_prefix and not holds_special):
            return
        best, best_count = max(counts.items(), key=lambda item: (item[1], item[0]))
        if (
            prefix >= min_prefix
            and not holds_special
            and best != label
            and best_count > counts.get(label, 0)
        ):
            kept.append((low, prefix, best))
            label = best
        if prefix == max_prefix:
            return
        middle = low + size // 2
        left = [r for r in inside if r[0] < middle]
        right = [r for r in inside if r[1] >= middle]
        if left:
            visit(low, prefix + 1, left, label)
        if right:
            visit(middle, prefix + 1, right, label)

    visit(0, 0, ranges, None)
    return kept


def largest_networks(ranges, bits):
    """Each country's largest CIDR network in `ranges` (first wins on ties)."""
    largest = {}
    for first, last, cc in ranges:
        addr_cls = ipaddress.IPv6Address if bits == 128 else ipaddress.IPv4Address
        for net in ipaddress.summarize_address_range(addr_cls(first), addr_cls(last)):
            if overlaps_special(net):
                continue
            best = largest.get(cc)
            if best is None or net.prefixlen < best[1]:
                largest[cc] = (int(net.network_address), net.prefixlen)
    return largest


def overlaps_special(net):
    """Whether `net` holds, or lies in, special-purpose space of its family."""
    special = SPECIAL_V6 if net.version == 6 else SPECIAL_V4
    return any(net.overlaps(other) for other in special)


def network_text(low, prefix, bits):
    """`low/prefix` in presentation form."""
    if bits == 128:
        return str(ipaddress.IPv6Network((low, prefix)))
    return str(ipaddress.IPv4Network((low, prefix)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--geoip", default="/usr/share/tor/geoip", help="IPv4 file (default %(default)s)")
    ap.add_argument("--geoip6", default="/usr/share/tor/geoip6", help="IPv6 file (default %(default)s)")
    ap.add_argument("--out", default="-", help="output CSV (default: stdout)")
    args = ap.parse_args()
    try:
        v4 = read_ranges(args.geoip, False)
        v6 = read_ranges(args.geoip6, True)
    except (OSError, InputError) as e:
        print(f"make-world-sample: error: {e}", file=sys.stderr)
        return 1

    rows = []
    for ranges, family in ((v4, V4), (v6, V6)):
        bits = family[0]
        kept = walk(ranges, family)
        present = {cc for _, _, cc in kept}
        taken = {(low, prefix) for low, prefix, _ in kept}
        added = 0
        for cc, (low, prefix) in sorted(largest_networks(ranges, bits).items()):
            if cc not in present and (low, prefix) not in taken:
                kept.append((low, prefix, cc))
                taken.add((low, prefix))
                added += 1
        net_cls = ipaddress.IPv6Network if bits == 128 else ipaddress.IPv4Network
        kept = [
            (low, prefix, cc)
            for low, prefix, cc in kept
            if not overlaps_special(net_cls((low, prefix)))
        ]
        kept.sort()
        for low, prefix, cc in kept:
            continent = LEGACY_CONTINENT.get(cc, "")
            rows.append(f"{network_text(low, prefix, bits)},{continent},{cc},,,,,")
        print(
            f"make-world-sample: IPv{4 if bits == 32 else 6}: {len(ranges)} ranges -> "
            f"{len(kept)} networks ({added} added so every country is known), "
            f"{len({cc for _, _, cc in kept})} countries",
            file=sys.stderr,
        )

    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="ascii", newline="\n")
    try:
        out.write(HEADER + "\n")
        for row in rows:
            out.write(row + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
