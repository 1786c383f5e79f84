//! Writing responses: header, echoed question, pre-rendered records, OPT, and truncation.

use super::wire::{
    ClientSubnet, EDNS_FLAG_DO, FLAG_AA, FLAG_QR, FLAG_RD, FLAG_TC, HEADER_LEN, OPCODE_MASK,
    OPTION_ECS, Query,
};
use crate::zone::RRset;

/// Response codes we send (the low four bits; BADVERS rides in the OPT record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Rcode {
    /// No error.
    NoError = 0,
    /// The query was malformed.
    FormErr = 1,
    /// Server failure.
    ServFail = 2,
    /// The name does not exist.
    NxDomain = 3,
    /// Not implemented.
    NotImp = 4,
    /// Refused.
    Refused = 5,
    /// Extended RCODE 16, EDNS version not supported (RFC 6891 section 6.1.3).
    BadVers = 16,
}

/// The owner name of a record being written.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    /// A compression pointer to this offset in the message.
    Pointer(u16),
    /// A full lowercase wire name.
    Name(&'a [u8]),
}

/// The three record sections, in message order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    /// Answer.
    Answer = 0,
    /// Authority.
    Authority = 1,
    /// Additional.
    Additional = 2,
}

/// A response being built into a caller-supplied buffer.
pub struct Response<'b> {
    /// The output; starts with the header and the echoed question.
    buf: &'b mut Vec<u8>,
    /// Records written per section.
    counts: [u16; 3],
    /// Offset where each section ends (valid for sections already finished).
    ends: [usize; 3],
    /// The section being written.
    section: Section,
    /// Flags to send (QR, opcode, RD already set).
    flags: u16,
    /// Offset just past the echoed question.
    question_end: usize,
    /// Our OPT record, when the query had EDNS.
    edns: Option<EdnsReply>,
}

/// What our OPT record will say.
#[derive(Debug, Clone, Copy)]
struct EdnsReply {
    /// DO, copied from the query (RFC 3225 section 3).
    dnssec_ok: bool,
    /// The full response code (its upper bits go into the OPT record).
    rcode: Rcode,
    /// The query's Client Subnet option, echoed with `scope` (RFC 7871 section 7.2.1).
    ecs: Option<ClientSubnet>,
    /// SCOPE PREFIX-LENGTH: how much of the client address the answer depends on.
    scope: u8,
}

impl EdnsReply {
    /// Bytes the OPT record takes.
    fn len(&self) -> usize {
        11 + self.ecs.map_or(0, |ecs| 8 + ecs.address_bytes().len())
    }

    /// Appends the OPT record advertising `payload`.
    fn write(&self, payload: u16, buf: &mut Vec<u8>) {
        buf.push(0);
        buf.extend_from_slice(&crate::zone::rtype::OPT.to_be_bytes());
        buf.extend_from_slice(&payload.to_be_bytes());
        buf.push((self.rcode as u16 >> 4) as u8);
        buf.push(0);
        let flags = if self.dnssec_ok { EDNS_FLAG_DO } else { 0 };
        buf.extend_from_slice(&flags.to_be_bytes());
        match &self.ecs {
            None => buf.extend_from_slice(&[0, 0]),
            Some(ecs) => {
                let address = ecs.address_bytes();
                let option_len = 4 + address.len() as u16;
                buf.extend_from_slice(&(4 + option_len).to_be_bytes());
                buf.extend_from_slice(&OPTION_ECS.to_be_bytes());
                buf.extend_from_slice(&option_len.to_be_bytes());
                buf.extend_from_slice(&ecs.family.to_be_bytes());
                buf.push(ecs.source);
                buf.push(self.scope);
                buf.extend_from_slice(address);
            }
        }
    }
}

/// Writes a header-only reply (FORMERR, NOTIMP) to `packet`, which must be 12 bytes or more.
pub fn header_only(packet: &[u8], rcode: Rcode, out: &mut Vec<u8>) {
    out.clear();
    let flags = u16::from_be_bytes([packet[2], packet[3]]);
    let flags = FLAG_QR | (flags & (OPCODE_MASK | FLAG_RD)) | rcode as u16;
    out.extend_from_slice(&packet[..2]);
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0; 8]);
}

impl<'b> Response<'b> {
    /// Starts a response to `query`: header and the question exactly as received.
    pub fn new(packet: &[u8], query: &Query, out: &'b mut Vec<u8>) -> Response<'b> {
        out.clear();
        out.extend_from_slice(&query.id.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&packet[HEADER_LEN..query.question_end]);
        let question_end = out.len();
        Response {
            buf: out,
            counts: [0; 3],
            ends: [question_end; 3],
            section: Section::Answer,
            flags: FLAG_QR | (query.flags & FLAG_RD),
            question_end,
            edns: query.edns.map(|edns| EdnsReply {
                dnssec_ok: edns.dnssec_ok,
                rcode: Rcode::NoError,
                ecs: edns.ecs,
                scope: 0,
            }),
        }
    }

    /// Sets the AA flag.
    pub fn authoritative(&mut self) {
        self.flags |= FLAG_AA;
    }

    /// Sets the response code (BADVERS goes into the OPT record).
    pub fn rcode(&mut self, rcode: Rcode) {
        self.flags = (self.flags & !0xf) | (rcode as u16 & 0xf);
        if let Some(edns) = &mut self.edns {
            edns.rcode = rcode;
        }
    }

    /// Raises the ECS SCOPE PREFIX-LENGTH echoed to the client to at least `scope`: the answer
    /// depends on that many bits of the subnet (0, the default, for answers that do not depend on
    /// the client at all). Along a CNAME chain through several GSLB names the reply depends on
    /// every step, so the longest scope wins.
    pub fn ecs_scope(&mut self, scope: u8) {
        if let Some(edns) = &mut self.edns {
            edns.scope = edns.scope.max(scope);
        }
    }

    /// Writes every record of `rrset` into `section`, each prefixed with `owner`.
    pub fn rrset(&mut self, section: Section, owner: Owner<'_>, rrset: &RRset) {
        for record in rrset.records() {
            self.record(section, owner, record);
        }
    }

    /// Writes one owner-less record (TYPE onwards) into `section` with `owner`.
    pub fn record(&mut self, section: Section, owner: Owner<'_>, record: &[u8]) {
        debug_assert!(section >= self.section, "sections are written in order");
        while self.section < section {
            self.ends[self.section as usize] = self.buf.len();
            self.section = match self.section {
                Section::Answer => Section::Authority,
                _ => Section::Additional,
            };
        }
        match owner {
            Owner::Pointer(offset) => self.buf.extend_from_slice(&(0xc000 | offset).to_be_bytes()),
            Owner::Name(name) => self.buf.extend_from_slice(name),
        }
        self.buf.extend_from_slice(record);
        self.counts[section as usize] += 1;
    }

    /// Finishes the message within `limit` bytes, advertising `payload` in our OPT.
    ///
    /// If it is too long, the additional section is dropped; if it is still too long, or the
    /// additional section is `required` (referral glue, RFC 9471), every record is dropped and TC
    /// is set, keeping the question and OPT. Returns whether TC was set.
    pub fn finish(mut self, limit: usize, payload: u16, additional_required: bool) -> bool {
        let section = self.section as usize;
        for end in &mut self.ends[section..] {
            *end = self.buf.len();
        }
        let opt_len = self.edns.as_ref().map_or(0, EdnsReply::len);
        let mut truncated = false;
        if self.buf.len() + opt_len > limit {
            let authority_end = self.ends[Section::Authority as usize];
            if authority_end + opt_len <= limit && !(additional_required && self.counts[2] > 0) {
                self.buf.truncate(authority_end);
                self.counts[2] = 0;
            } else {
                self.buf.truncate(self.question_end);
                self.counts = [0; 3];
                self.flags |= FLAG_TC;
                truncated = true;
            }
        }
        let mut additional = self.counts[2];
        if let Some(edns) = &self.edns {
            additional += 1;
            edns.write(payload, self.buf);
        }
        self.buf[2..4].copy_from_slice(&self.flags.to_be_bytes());
        self.buf[6..8].copy_from_slice(&self.counts[0].to_be_bytes());
        self.buf[8..10].copy_from_slice(&self.counts[1].to_be_bytes());
        self.buf[10..12].copy_from_slice(&additional.to_be_bytes());
        truncated
    }
}
