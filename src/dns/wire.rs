//! Reading queries off the wire: header, the one question, and the OPT record.
//!
//! The parser never allocates: the question name is copied, lowercased, into a fixed buffer, and
//! everything else is read in place. It decides only what the packet *is*; what to answer is
//! the business of [`super::answer`].

/// Length of the DNS header.
pub const HEADER_LEN: usize = 12;
/// Longest domain name in wire format (RFC 1035 section 3.1).
pub const MAX_NAME_LEN: usize = 255;

/// Header flag: this is a response.
pub const FLAG_QR: u16 = 0x8000;
/// Header flag: authoritative answer.
pub const FLAG_AA: u16 = 0x0400;
/// Header flag: truncated.
pub const FLAG_TC: u16 = 0x0200;
/// Header flag: recursion desired.
pub const FLAG_RD: u16 = 0x0100;
/// Mask of the opcode bits in the flags word.
pub const OPCODE_MASK: u16 = 0x7800;
/// EDNS option code of Client Subnet (RFC 7871).
pub const OPTION_ECS: u16 = 8;
/// EDNS flag: DNSSEC OK (RFC 3225).
pub const EDNS_FLAG_DO: u16 = 0x8000;

/// A packet that is not a query we answer normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Not worth a reply: shorter than a header, or a response (QR=1).
    Drop,
    /// Answer FORMERR with the header only.
    FormErr,
    /// Opcode we do not implement: answer NOTIMP with the header only.
    NotImp,
}

/// A lowercased wire-format domain name held inline.
#[derive(Clone, Copy)]
pub struct NameBuf {
    /// The name's bytes; only `..len` is meaningful.
    bytes: [u8; MAX_NAME_LEN],
    /// Length of the name, including the root label.
    len: u8,
}

impl NameBuf {
    /// The name in wire format, lowercase.
    pub fn as_wire(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for NameBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::zone::display_name(self.as_wire()))
    }
}

/// What the OPT record of a query said (RFC 6891 section 6.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    /// Requestor's UDP payload size.
    pub payload: u16,
    /// EDNS version.
    pub version: u8,
    /// DNSSEC OK bit.
    pub dnssec_ok: bool,
    /// The Client Subnet option, when present and well-formed.
    pub ecs: Option<ClientSubnet>,
}

/// Address family numbers of ECS (RFC 7871 section 6, from the IANA registry).
pub mod family {
    /// IPv4.
    pub const IPV4: u16 = 1;
    /// IPv6.
    pub const IPV6: u16 = 2;
}

/// A validated EDNS Client Subnet option from a query (RFC 7871 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSubnet {
    /// Address family: [`family::IPV4`] or [`family::IPV6`].
    pub family: u16,
    /// SOURCE PREFIX-LENGTH: how many leading bits of `address` are meaningful.
    pub source: u8,
    /// The address, left-aligned and zero-padded; bits beyond `source` are zero.
    pub address: [u8; 16],
}

impl ClientSubnet {
    /// ADDRESS as sent: the first ceil(SOURCE / 8) bytes.
    pub fn address_bytes(&self) -> &[u8] {
        &self.address[..usize::from(self.source).div_ceil(8)]
    }

    /// The client network's address as an `IpAddr` (bits beyond SOURCE are zero).
    pub fn ip(&self) -> std::net::IpAddr {
        if self.family == family::IPV4 {
            let [a, b, c, d, ..] = self.address;
            std::net::IpAddr::from([a, b, c, d])
        } else {
            std::net::IpAddr::from(self.address)
        }
    }
}

/// Parses and checks the data of an ECS option; every violation is FORMERR (RFC 7871 7.1).
fn parse_ecs(data: &[u8]) -> Result<ClientSubnet, Malformed> {
    let [f0, f1, source, scope, address @ ..] = data else {
        return Err(Malformed::FormErr);
    };
    let family = u16::from_be_bytes([*f0, *f1]);
    let max = match family {
        family::IPV4 => 32,
        family::IPV6 => 128,
        _ => return Err(Malformed::FormErr),
    };
    // SCOPE must be zero in queries; SOURCE within the family; ADDRESS exactly ceil(SOURCE/8).
    if *scope != 0 || *source > max || address.len() != usize::from(*source).div_ceil(8) {
        return Err(Malformed::FormErr);
    }
    // No bits may be set beyond SOURCE.
    if let Some(last) = address.last() {
        let used = *source % 8;
        if used != 0 && last & (0xff >> used) != 0 {
            return Err(Malformed::FormErr);
        }
    }
    let mut subnet = ClientSubnet {
        family,
        source: *source,
        address: [0; 16],
    };
    subnet.address[..address.len()].copy_from_slice(address);
    Ok(subnet)
}

/// A query that parsed: the header fields we need, the question and EDNS.
#[derive(Debug, Clone, Copy)]
pub struct Query {
    /// Message ID, echoed.
    pub id: u16,
    /// The flags word as received.
    pub flags: u16,
    /// The question name, lowercased.
    pub qname: NameBuf,
    /// Question type.
    pub qtype: u16,
    /// Question class.
    pub qclass: u16,
    /// Offset just past the question: `packet[HEADER_LEN..question_end]` is echoed verbatim.
    pub question_end: usize,
    /// The OPT record, when the query had one.
    pub edns: Option<Edns>,
}

/// Reads a big-endian u16 at `offset`, if the packet is long enough.
fn read_u16(packet: &[u8], offset: usize) -> Option<u16> {
    let bytes = packet.get(offset..offset + 2)?;
    Some(u16::from_be_bytes([bytes[0], bytes[1]]))
}

/// Parses `packet` as a query.
pub fn parse_query(packet: &[u8]) -> Result<Query, Malformed> {
    if packet.len() < HEADER_LEN {
        return Err(Malformed::Drop);
    }
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let flags = u16::from_be_bytes([packet[2], packet[3]]);
    if flags & FLAG_QR != 0 {
        return Err(Malformed::Drop);
    }
    if flags & OPCODE_MASK != 0 {
        return Err(Malformed::NotImp);
    }
    let count = |index: usize| u16::from_be_bytes([packet[4 + 2 * index], packet[5 + 2 * index]]);
    let (qdcount, ancount, nscount, arcount) = (count(0), count(1), count(2), count(3));
    if qdcount != 1 {
        return Err(Malformed::FormErr);
    }

    let mut qname = NameBuf {
        bytes: [0; MAX_NAME_LEN],
        len: 0,
    };
    let mut offset = HEADER_LEN;
    loop {
        let len = usize::from(*packet.get(offset).ok_or(Malformed::FormErr)?);
        // Compression pointers and extended label types have no place in a question.
        if len > 63 {
            return Err(Malformed::FormErr);
        }
        let label = packet
            .get(offset + 1..offset + 1 + len)
            .ok_or(Malformed::FormErr)?;
        let start = usize::from(qname.len);
        if start + 1 + len > MAX_NAME_LEN {
            return Err(Malformed::FormErr);
        }
        qname.bytes[start] = len as u8;
        for (dst, src) in qname.bytes[start + 1..start + 1 + len]
            .iter_mut()
            .zip(label)
        {
            *dst = src.to_ascii_lowercase();
        }
        qname.len = (start + 1 + len) as u8;
        offset += 1 + len;
        if len == 0 {
            break;
        }
    }
    let qtype = read_u16(packet, offset).ok_or(Malformed::FormErr)?;
    let qclass = read_u16(packet, offset + 2).ok_or(Malformed::FormErr)?;
    offset += 4;
    let question_end = offset;

    for _ in 0..u32::from(ancount) + u32::from(nscount) {
        offset = skip_record(packet, offset)?.next;
    }
    let mut edns = None;
    for _ in 0..arcount {
        let record = skip_record(packet, offset)?;
        if record.rtype == crate::zone::rtype::OPT {
            // RFC 6891 6.1.1: one OPT at most, owned by the root.
            if edns.is_some() || record.owner_len != 1 || packet[offset] != 0 {
                return Err(Malformed::FormErr);
            }
            edns = Some(parse_opt(packet, &record)?);
        }
        offset = record.next;
    }
    Ok(Query {
        id,
        flags,
        qname,
        qtype,
        qclass,
        question_end,
        edns,
    })
}

/// Where one resource record lies in a packet.
struct RecordSpan {
    /// Bytes taken by the owner name in place (a pointer ends it).
    owner_len: usize,
    /// Type code.
    rtype: u16,
    /// CLASS field.
    class: u16,
    /// TTL field.
    ttl: u32,
    /// Offset of RDATA.
    rdata: usize,
    /// RDLENGTH.
    rdlen: usize,
    /// Offset of the next record.
    next: usize,
}

/// Steps over the record at `offset`, checking that it fits in the packet.
fn skip_record(packet: &[u8], offset: usize) -> Result<RecordSpan, Malformed> {
    let mut cursor = offset;
    loop {
        let len = *packet.get(cursor).ok_or(Malformed::FormErr)?;
        match len {
            0 => {
                cursor += 1;
                break;
            }
            1..=63 => cursor += 1 + usize::from(len),
            0xc0..=0xff => {
                cursor += 2;
                break;
            }
            _ => return Err(Malformed::FormErr),
        }
        if cursor - offset > MAX_NAME_LEN {
            return Err(Malformed::FormErr);
        }
    }
    let owner_len = cursor - offset;
    let fixed = packet.get(cursor..cursor + 10).ok_or(Malformed::FormErr)?;
    let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let class = u16::from_be_bytes([fixed[2], fixed[3]]);
    let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
    let rdata = cursor + 10;
    if packet.len() < rdata + rdlen {
        return Err(Malformed::FormErr);
    }
    Ok(RecordSpan {
        owner_len,
        rtype,
        class,
        ttl,
        rdata,
        rdlen,
        next: rdata + rdlen,
    })
}

/// Reads an OPT record: payload, version, DO, and the options (checked for framing).
fn parse_opt(packet: &[u8], record: &RecordSpan) -> Result<Edns, Malformed> {
    let mut ecs = None;
    let mut cursor = record.rdata;
    let end = record.rdata + record.rdlen;
    while cursor < end {
        let code = read_u16(packet, cursor)
            .filter(|_| cursor + 4 <= end)
            .ok_or(Malformed::FormErr)?;
        let len = usize::from(read_u16(packet, cursor + 2).ok_or(Malformed::FormErr)?);
        let data = cursor + 4;
        if data + len > end {
            return Err(Malformed::FormErr);
        }
        if code == OPTION_ECS {
            if ecs.is_some() {
                return Err(Malformed::FormErr);
            }
            ecs = Some(parse_ecs(&packet[data..data + len])?);
        }
        cursor = data + len;
    }
    Ok(Edns {
        payload: record.class,
        version: (record.ttl >> 16) as u8,
        dnssec_ok: record.ttl as u16 & EDNS_FLAG_DO != 0,
        ecs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `name` (presentation, no trailing dot) type `qtype`, class IN, no EDNS.
    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut packet = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.').filter(|label| !label.is_empty()) {
            packet.push(label.len() as u8);
            packet.extend_from_slice(label.as_bytes());
        }
        packet.push(0);
        packet.extend_from_slice(&qtype.to_be_bytes());
        packet.extend_from_slice(&1u16.to_be_bytes());
        packet
    }

    /// `packet` with an OPT record appended (payload, version, flags, rdata).
    fn with_opt(
        mut packet: Vec<u8>,
        payload: u16,
        version: u8,
        flags: u16,
        rdata: &[u8],
    ) -> Vec<u8> {
        packet[11] += 1;
        packet.extend_from_slice(&[0, 0, 41]);
        packet.extend_from_slice(&payload.to_be_bytes());
        packet.extend_from_slice(&[0, version]);
        packet.extend_from_slice(&flags.to_be_bytes());
        packet.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        packet.extend_from_slice(rdata);
        packet
    }

    #[test]
    fn plain_query_is_lowercased_and_located() {
        let packet = query("WwW.Example.COM", 1);
        let parsed = parse_query(&packet).unwrap();
        assert_eq!(parsed.id, 0x1234);
        assert_eq!(parsed.qname.as_wire(), b"\x03www\x07example\x03com\x00");
        assert_eq!((parsed.qtype, parsed.qclass), (1, 1));
        assert_eq!(parsed.question_end, packet.len());
        assert!(parsed.edns.is_none());
    }

    #[test]
    fn root_query() {
        let parsed = parse_query(&query("", 2)).unwrap();
        assert_eq!(parsed.qname.as_wire(), b"\x00");
    }

    #[test]
    fn edns_fields_and_options() {
        let ecs = [0, 8, 0, 7, 0, 1, 24, 0, 192, 0, 2];
        let cookie = [0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8];
        let rdata: Vec<u8> = cookie.iter().chain(ecs.iter()).copied().collect();
        let packet = with_opt(query("a.b", 1), 4096, 0, 0x8000, &rdata);
        let edns = parse_query(&packet).unwrap().edns.unwrap();
        assert_eq!(edns.payload, 4096);
        assert_eq!(edns.version, 0);
        assert!(edns.dnssec_ok);
        let ecs = edns.ecs.unwrap();
        assert_eq!((ecs.family, ecs.source), (1, 24));
        assert_eq!(ecs.address_bytes(), [192, 0, 2]);
        assert_eq!(ecs.ip(), std::net::IpAddr::from([192, 0, 2, 0]));
    }

    /// `query` with an ECS option whose data is `ecs`.
    fn with_ecs(ecs: &[u8]) -> Vec<u8> {
        let mut rdata = vec![0, 8];
        rdata.extend_from_slice(&(ecs.len() as u16).to_be_bytes());
        rdata.extend_from_slice(ecs);
        with_opt(query("a.b", 1), 1232, 0, 0, &rdata)
    }

    #[test]
    fn rfc7871_6_valid_ecs_options() {
        let parse = |ecs: &[u8]| {
            parse_query(&with_ecs(ecs))
                .unwrap()
                .edns
                .unwrap()
                .ecs
                .unwrap()
        };
        let v6 = parse(&[0, 2, 56, 0, 0x20, 1, 0x0d, 0xb8, 0, 0, 0]);
        assert_eq!((v6.family, v6.source), (2, 56));
        assert_eq!(v6.ip(), "2001:db8::".parse::<std::net::IpAddr>().unwrap());
        let zero = parse(&[0, 1, 0, 0]);
        assert_eq!((zero.source, zero.address_bytes()), (0, &[][..]));
        let odd = parse(&[0, 1, 25, 0, 10, 1, 2, 0x80]);
        assert_eq!(odd.ip(), std::net::IpAddr::from([10, 1, 2, 128]));
        let full = parse(&[0, 1, 32, 0, 81, 2, 69, 142]);
        assert_eq!(full.address_bytes(), [81, 2, 69, 142]);
    }

    #[test]
    fn rfc7871_7_1_malformed_ecs_is_formerr() {
        let formerr = |ecs: &[u8]| {
            assert_eq!(
                parse_query(&with_ecs(ecs)).unwrap_err(),
                Malformed::FormErr,
                "{ecs:?}"
            )
        };
        formerr(&[0, 1, 24]); // shorter than 4 bytes
        formerr(&[0, 1, 24, 8, 192, 0, 2]); // SCOPE non-zero in a query
        formerr(&[0, 3, 8, 0, 10]); // unknown family
        formerr(&[0, 0, 0, 0]); // family 0
        formerr(&[0, 1, 33, 0, 1, 2, 3, 4, 5]); // SOURCE above 32
        formerr(&[
            0, 2, 129, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
        ]);
        formerr(&[0, 1, 24, 0, 192, 0]); // ADDRESS shorter than ceil(SOURCE/8)
        formerr(&[0, 1, 24, 0, 192, 0, 2, 0]); // ADDRESS longer
        formerr(&[0, 1, 0, 0, 0]); // SOURCE 0 with an address byte
        formerr(&[0, 1, 23, 0, 192, 0, 3]); // bit set beyond SOURCE
        formerr(&[0, 1, 25, 0, 10, 1, 2, 0xc0]);
        // Two ECS options.
        let mut rdata = vec![0, 8, 0, 4, 0, 1, 0, 0, 0, 8, 0, 4, 0, 1, 0, 0];
        let packet = with_opt(query("a.b", 1), 1232, 0, 0, &rdata);
        assert_eq!(parse_query(&packet).unwrap_err(), Malformed::FormErr);
        rdata.truncate(8);
        assert!(parse_query(&with_opt(query("a.b", 1), 1232, 0, 0, &rdata)).is_ok());
    }

    #[test]
    fn short_and_response_packets_are_dropped() {
        assert_eq!(parse_query(&[0; 11]).unwrap_err(), Malformed::Drop);
        let mut packet = query("a", 1);
        packet[2] |= 0x80;
        assert_eq!(parse_query(&packet).unwrap_err(), Malformed::Drop);
    }

    #[test]
    fn other_opcodes_are_notimp() {
        let mut packet = query("a", 1);
        packet[2] |= 15 << 3;
        assert_eq!(parse_query(&packet).unwrap_err(), Malformed::NotImp);
    }

    #[test]
    fn formerr_cases() {
        let formerr =
            |packet: &[u8]| assert_eq!(parse_query(packet).unwrap_err(), Malformed::FormErr);
        let mut packet = query("a", 1);
        packet[5] = 0;
        formerr(&packet);
        packet[5] = 2;
        formerr(&packet);
        // Truncated question.
        let packet = query("abc", 1);
        formerr(&packet[..packet.len() - 1]);
        formerr(&packet[..14]);
        // Pointer in the question.
        let mut packet = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1];
        formerr(&packet);
        // Name longer than 255 bytes.
        packet.truncate(12);
        for _ in 0..5 {
            packet.push(63);
            packet.extend_from_slice(&[b'a'; 63]);
        }
        packet.extend_from_slice(&[0, 0, 1, 0, 1]);
        formerr(&packet);
        // Two OPT records; OPT not at the root; option overrunning the record.
        let packet = with_opt(with_opt(query("a", 1), 512, 0, 0, &[]), 512, 0, 0, &[]);
        formerr(&packet);
        let mut packet = with_opt(query("a", 1), 512, 0, 0, &[]);
        let opt_start = packet.len() - 11;
        packet.splice(opt_start..opt_start + 1, [1, b'x', 0]);
        formerr(&packet);
        formerr(&with_opt(query("a", 1), 512, 0, 0, &[0, 8, 0, 9, 0, 1]));
        formerr(&with_opt(query("a", 1), 512, 0, 0, &[0, 8]));
        // An additional record claimed but missing.
        let mut packet = query("a", 1);
        packet[11] = 1;
        formerr(&packet);
    }

    #[test]
    fn answer_and_authority_records_are_skipped() {
        let mut packet = query("a", 1);
        packet[7] = 1;
        packet.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
        let packet = with_opt(packet, 1232, 0, 0, &[]);
        let parsed = parse_query(&packet).unwrap();
        assert_eq!(parsed.edns.unwrap().payload, 1232);
    }
}
