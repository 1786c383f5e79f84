//! Writing responses: header, echoed question, pre-rendered records, OPT, and truncation.

use super::wire::{
    EDNS_FLAG_DO, FLAG_AA, FLAG_QR, FLAG_RD, FLAG_TC, HEADER_LEN, OPCODE_MASK, Query,
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
    /// The query's DO bit and our extended rcode, when the query had EDNS.
    edns: Option<(bool, Rcode)>,
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
            edns: query.edns.map(|edns| (edns.dnssec_ok, Rcode::NoError)),
        }
    }

    /// Sets the AA flag.
    pub fn authoritative(&mut self) {
        self.flags |= FLAG_AA;
    }

    /// Sets the response code (BADVERS goes into the OPT record).
    pub fn rcode(&mut self, rcode: Rcode) {
        self.flags = (self.flags & !0xf) | (rcode as u16 & 0xf);
        if let Some((_, ext)) = &mut self.edns {
            *ext = rcode;
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
        let opt_len = if self.edns.is_some() { 11 } else { 0 };
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
        if let Some((dnssec_ok, rcode)) = self.edns {
            additional += 1;
            self.buf.push(0);
            self.buf
                .extend_from_slice(&crate::zone::rtype::OPT.to_be_bytes());
            self.buf.extend_from_slice(&payload.to_be_bytes());
            self.buf.push((rcode as u16 >> 4) as u8);
            self.buf.push(0);
            let flags = if dnssec_ok { EDNS_FLAG_DO } else { 0 };
            self.buf.extend_from_slice(&flags.to_be_bytes());
            self.buf.extend_from_slice(&[0, 0]);
        }
        self.buf[2..4].copy_from_slice(&self.flags.to_be_bytes());
        self.buf[6..8].copy_from_slice(&self.counts[0].to_be_bytes());
        self.buf[8..10].copy_from_slice(&self.counts[1].to_be_bytes());
        self.buf[10..12].copy_from_slice(&additional.to_be_bytes());
        truncated
    }
}
