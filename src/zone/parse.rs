//! RFC 1035 master-file (zone file) reader with precise line numbers.
//!
//! The reader is a hand-written byte lexer that turns the text into logical
//! lines (one record or directive each, parentheses joined), followed by a
//! record parser that resolves owners, TTLs and classes and builds the RDATA.
//! RDATA for most types is built here directly (so that relative names and
//! RFC 1035 escapes are handled exactly); the remaining types are handed to
//! hickory-proto's presentation-format parser. RFC 3597 generic data
//! (`\# <length> <hex>`) works for every type.
//!
//! Zone semantics (SOA count, CNAME exclusivity, out-of-zone data) are not
//! checked here; the caller validates the returned records.

use std::borrow::Cow;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hickory_proto::rr::rdata::naptr::verify_flags;
use hickory_proto::rr::rdata::{
    ANAME, CNAME, HINFO, HTTPS, MX, NAPTR, NS, NULL, PTR, SOA, SRV, TXT,
};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinDecoder, Restrict};
use hickory_proto::serialize::txt::parse_ttl;

/// Deepest allowed `$INCLUDE` nesting (the top-level file is depth 0).
const MAX_INCLUDE_DEPTH: usize = 8;

/// Largest TTL allowed by RFC 2181 section 8.
const MAX_TTL: u32 = i32::MAX as u32;

/// Longest domain name in wire format, in octets (RFC 1035 section 2.3.4).
const MAX_NAME_LEN: usize = 255;

/// Longest label, in octets.
const MAX_LABEL_LEN: usize = 63;

/// Longest `<character-string>`, in octets.
const MAX_STRING_LEN: usize = 255;

/// Where a record or error came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file, as named by the caller or by `$INCLUDE` (joined to the zones directory).
    pub file: Arc<Path>,
    /// One-based line number.
    pub line: u32,
}

/// Formats a location as `file:line`.
impl fmt::Display for Location {
    /// Formats as `path/to/file.zone:12`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One resource record as read from a master file.
#[derive(Debug, Clone)]
pub struct SourceRecord {
    /// Owner name: absolute (fqdn), letter case as written.
    pub name: Name,
    /// Resolved TTL in seconds.
    pub ttl: u32,
    /// Record data; the record type is `rdata.record_type()`.
    pub rdata: RData,
    /// Line where the record starts.
    pub location: Location,
}

/// A zone file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The zone file itself could not be read from disk.
    #[error("{}: cannot read zone file: {source}", file.display())]
    Io {
        /// The file that could not be read.
        file: Arc<Path>,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Malformed text: quotes, parentheses, escapes, missing owner or type.
    #[error("{location}: {message}")]
    Syntax {
        /// Where the problem is.
        location: Location,
        /// What is wrong and what to do.
        message: String,
    },
    /// A TTL (on a record or in `$TTL`) could not be read.
    #[error("{location}: bad TTL '{value}': {reason}")]
    BadTtl {
        /// Where the TTL is.
        location: Location,
        /// The TTL as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A record has no TTL and none can be inherited.
    #[error("{location}: no TTL: add $TTL or a TTL on the record")]
    NoTtl {
        /// The record without a TTL.
        location: Location,
    },
    /// An owner name or `$ORIGIN`/`$INCLUDE` origin is malformed.
    #[error("{location}: bad domain name '{name}': {reason}")]
    BadName {
        /// Where the name is.
        location: Location,
        /// The name as written.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A record has a class other than IN.
    #[error(
        "{location}: class {class} is not supported: only IN records are served; write IN or leave the class out"
    )]
    UnsupportedClass {
        /// The record.
        location: Location,
        /// The class as written.
        class: String,
    },
    /// A record type mnemonic is not known.
    #[error(
        "{location}: unknown record type '{mnemonic}': use a type mnemonic such as A or MX, or TYPEnnn with RFC 3597 generic data (\\# <length> <hex>)"
    )]
    UnknownType {
        /// The record.
        location: Location,
        /// The type as written.
        mnemonic: String,
    },
    /// A record type is known but cannot be read from a zone file.
    #[error("{location}: record type {rtype} is not supported: {reason}")]
    UnsupportedType {
        /// The record.
        location: Location,
        /// The record type.
        rtype: String,
        /// Why, and what to do instead.
        reason: String,
    },
    /// The RDATA of a record is malformed.
    #[error("{location}: bad {rtype} record data: {reason}")]
    BadRdata {
        /// The record (line where it starts).
        location: Location,
        /// The record type.
        rtype: String,
        /// What is wrong (may quote hickory-proto's message).
        reason: String,
    },
    /// A `$DIRECTIVE` other than `$ORIGIN`, `$TTL` or `$INCLUDE`.
    #[error(
        "{location}: unknown directive '{directive}': only $ORIGIN, $TTL and $INCLUDE are supported"
    )]
    UnknownDirective {
        /// Where the directive is.
        location: Location,
        /// The directive as written.
        directive: String,
    },
    /// An `$INCLUDE` could not be followed.
    #[error("{location}: $INCLUDE {}: {reason}", path.display())]
    Include {
        /// The `$INCLUDE` line.
        location: Location,
        /// The included path as written.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
}

/// Accessors for [`ParseError`].
impl ParseError {
    /// The file and line the error refers to, if it refers to a line.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Self::Io { .. } => None,
            Self::Syntax { location, .. }
            | Self::BadTtl { location, .. }
            | Self::NoTtl { location }
            | Self::BadName { location, .. }
            | Self::UnsupportedClass { location, .. }
            | Self::UnknownType { location, .. }
            | Self::UnsupportedType { location, .. }
            | Self::BadRdata { location, .. }
            | Self::UnknownDirective { location, .. }
            | Self::Include { location, .. } => Some(location),
        }
    }
}

/// Reads `path` as the master file of zone `origin`.
///
/// `$INCLUDE` paths are resolved relative to `include_root` (the zones
/// directory) and must stay inside it after canonicalisation.
pub fn parse_zone_file(
    path: &Path,
    origin: &Name,
    include_root: &Path,
) -> Result<Vec<SourceRecord>, ParseError> {
    let file: Arc<Path> = Arc::from(path);
    let bytes = std::fs::read(path).map_err(|source| ParseError::Io {
        file: file.clone(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| ParseError::Io {
        file: file.clone(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "zone file is not valid UTF-8",
        ),
    })?;
    parse_text(&text, file, origin, include_root)
}

/// Same as [`parse_zone_file`], for text already in memory.
///
/// `file` is used only for locations (and include-loop detection if it
/// exists on disk); `$INCLUDE` still resolves against `include_root`.
pub fn parse_zone_str(
    text: &str,
    file: &Path,
    origin: &Name,
    include_root: &Path,
) -> Result<Vec<SourceRecord>, ParseError> {
    parse_text(text, Arc::from(file), origin, include_root)
}

/// Shared entry point of [`parse_zone_file`] and [`parse_zone_str`].
fn parse_text(
    text: &str,
    file: Arc<Path>,
    origin: &Name,
    include_root: &Path,
) -> Result<Vec<SourceRecord>, ParseError> {
    // A UTF-8 byte-order mark is not part of the first owner name.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut origin = origin.clone();
    origin.set_fqdn(true);
    let mut reader = Reader {
        include_root,
        canonical_root: None,
        default_ttl: None,
        last_ttl: None,
        records: Vec::new(),
        stack: Vec::new(),
    };
    if let Ok(canonical) = file.canonicalize() {
        reader.stack.push(canonical);
    }
    let state = FileState {
        origin,
        last_owner: None,
    };
    reader.read_text(text, &file, state, 0)?;
    Ok(reader.records)
}

// ---------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------

/// One token of a logical line.
#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    /// Raw text; for a quoted token, the text between the quotes with escapes undecoded.
    text: &'a str,
    /// Whether the token was written as a quoted string.
    quoted: bool,
}

/// Header of one logical line produced by the [`Lexer`].
#[derive(Debug, Clone, Copy)]
struct EntryStart {
    /// Line where the entry starts.
    line: u32,
    /// Whether the physical line where it starts begins with blank space.
    leading_blank: bool,
}

/// Splits master-file text into logical lines of tokens.
struct Lexer<'a> {
    /// The whole text.
    text: &'a str,
    /// `text` as bytes; all delimiters are ASCII, so byte offsets at delimiters are char boundaries.
    bytes: &'a [u8],
    /// Current byte offset.
    pos: usize,
    /// Current one-based line number.
    line: u32,
    /// File name for error locations.
    file: &'a Arc<Path>,
}

/// Whether `b` ends an unquoted token.
fn is_delimiter(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b';' | b'(' | b')')
}

/// Scanning of logical lines.
impl<'a> Lexer<'a> {
    /// Creates a lexer at the start of `text`.
    fn new(text: &'a str, file: &'a Arc<Path>) -> Self {
        Self {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            line: 1,
            file,
        }
    }

    /// Builds a syntax error at `line`.
    fn error(&self, line: u32, message: impl Into<String>) -> ParseError {
        ParseError::Syntax {
            location: Location {
                file: self.file.clone(),
                line,
            },
            message: message.into(),
        }
    }

    /// Reads the next logical line into `tokens`; `None` at end of input.
    fn next_entry(
        &mut self,
        tokens: &mut Vec<Token<'a>>,
    ) -> Result<Option<EntryStart>, ParseError> {
        loop {
            tokens.clear();
            if self.pos >= self.bytes.len() {
                return Ok(None);
            }
            let leading_blank = matches!(self.bytes[self.pos], b' ' | b'\t');
            let mut start_line: Option<u32> = None;
            let mut paren_line: Option<u32> = None;
            loop {
                let Some(&b) = self.bytes.get(self.pos) else {
                    if let Some(open) = paren_line {
                        return Err(self.error(open, "'(' is never closed: add the matching ')'"));
                    }
                    break;
                };
                match b {
                    b'\n' => {
                        self.pos += 1;
                        self.line += 1;
                        if paren_line.is_none() {
                            break;
                        }
                    }
                    b' ' | b'\t' | b'\r' => self.pos += 1,
                    b';' => {
                        while self.pos < self.bytes.len() && self.bytes[self.pos] != b'\n' {
                            self.pos += 1;
                        }
                    }
                    b'(' => {
                        if let Some(open) = paren_line {
                            return Err(self.error(
                                self.line,
                                format!("nested '(' (the '(' on line {open} is still open)"),
                            ));
                        }
                        paren_line = Some(self.line);
                        start_line.get_or_insert(self.line);
                        self.pos += 1;
                    }
                    b')' => {
                        if paren_line.is_none() {
                            return Err(self.error(
                                self.line,
                                "')' without a matching '(': remove it or add the '('",
                            ));
                        }
                        paren_line = None;
                        self.pos += 1;
                    }
                    b'"' => {
                        start_line.get_or_insert(self.line);
                        let start = self.pos + 1;
                        let end = self.skip_quoted(start)?;
                        tokens.push(Token {
                            // `start` follows and `end` is at an ASCII quote: both are char boundaries.
                            text: &self.text[start..end],
                            quoted: true,
                        });
                        self.pos = end + 1;
                    }
                    _ => {
                        start_line.get_or_insert(self.line);
                        let start = self.pos;
                        let end = self.skip_unquoted(start)?;
                        tokens.push(Token {
                            // `start` follows a delimiter or is 0; `end` is at a delimiter or the end.
                            text: &self.text[start..end],
                            quoted: false,
                        });
                        self.pos = end;
                    }
                }
            }
            if let Some(line) = start_line
                && !tokens.is_empty()
            {
                return Ok(Some(EntryStart {
                    line,
                    leading_blank,
                }));
            }
        }
    }

    /// Finds the closing quote of a quoted string whose content starts at `start`.
    fn skip_quoted(&self, start: usize) -> Result<usize, ParseError> {
        let mut i = start;
        while let Some(&b) = self.bytes.get(i) {
            match b {
                b'"' => return Ok(i),
                b'\\' => match self.bytes.get(i + 1) {
                    Some(b'\n') | None => break,
                    Some(_) => i += 2,
                },
                b'\n' => break,
                _ => i += 1,
            }
        }
        Err(self.error(
            self.line,
            "unterminated quoted string: add the closing '\"' on the same line",
        ))
    }

    /// Finds the end of an unquoted token starting at `start`.
    ///
    /// A `"` inside the token (as in SVCB `alpn="h2,h3"`) opens a quoted
    /// section that may contain blanks; it stays part of the token.
    fn skip_unquoted(&self, start: usize) -> Result<usize, ParseError> {
        let mut i = start;
        while let Some(&b) = self.bytes.get(i) {
            match b {
                b'\\' => match self.bytes.get(i + 1) {
                    Some(b'\n') | None => {
                        return Err(self.error(
                            self.line,
                            "a backslash cannot end a line: remove it or escape what follows",
                        ));
                    }
                    Some(_) => i += 2,
                },
                b'"' => i = self.skip_quoted(i + 1)? + 1,
                b if is_delimiter(b) => break,
                _ => i += 1,
            }
        }
        Ok(i)
    }
}

// ---------------------------------------------------------------------------
// Reader: directives and records
// ---------------------------------------------------------------------------

/// State shared by a file and all the files it includes.
struct Reader<'r> {
    /// The zones directory `$INCLUDE` paths are relative to.
    include_root: &'r Path,
    /// `include_root` canonicalised, computed at the first `$INCLUDE`.
    canonical_root: Option<PathBuf>,
    /// TTL set by `$TTL`.
    default_ttl: Option<u32>,
    /// TTL of the previous record.
    last_ttl: Option<u32>,
    /// Records read so far, in file order.
    records: Vec<SourceRecord>,
    /// Canonical paths of the files being read, outermost first (for loop detection).
    stack: Vec<PathBuf>,
}

/// State scoped to one file (restored when an included file ends).
struct FileState {
    /// Current `$ORIGIN`.
    origin: Name,
    /// Owner of the previous record, reused by lines starting with blanks.
    last_owner: Option<Name>,
}

/// Builds a [`Location`].
fn loc(file: &Arc<Path>, line: u32) -> Location {
    Location {
        file: file.clone(),
        line,
    }
}

/// Directive and record handling.
impl Reader<'_> {
    /// Reads one file's text at include depth `depth`.
    fn read_text(
        &mut self,
        text: &str,
        file: &Arc<Path>,
        mut state: FileState,
        depth: usize,
    ) -> Result<(), ParseError> {
        let mut lexer = Lexer::new(text, file);
        let mut tokens = Vec::with_capacity(16);
        while let Some(entry) = lexer.next_entry(&mut tokens)? {
            let location = loc(file, entry.line);
            match tokens.split_first() {
                Some((first, args)) if !first.quoted && first.text.starts_with('$') => {
                    self.directive(first.text, args, location, &mut state, depth)?;
                }
                _ => self.record(&tokens, entry.leading_blank, location, &mut state)?,
            }
        }
        Ok(())
    }

    /// Handles a `$ORIGIN`, `$TTL` or `$INCLUDE` line (`name` is the directive, `args` the rest).
    fn directive(
        &mut self,
        name: &str,
        args: &[Token<'_>],
        location: Location,
        state: &mut FileState,
        depth: usize,
    ) -> Result<(), ParseError> {
        if name.eq_ignore_ascii_case("$ORIGIN") {
            let [arg] = args else {
                return Err(ParseError::Syntax {
                    location,
                    message: format!(
                        "$ORIGIN takes exactly one domain name, found {} arguments",
                        args.len()
                    ),
                });
            };
            state.origin = owner_name(arg.text, &state.origin, &location)?;
        } else if name.eq_ignore_ascii_case("$TTL") {
            let [arg] = args else {
                return Err(ParseError::Syntax {
                    location,
                    message: format!("$TTL takes exactly one TTL, found {} arguments", args.len()),
                });
            };
            self.default_ttl = Some(ttl_value(arg.text, &location)?);
        } else if name.eq_ignore_ascii_case("$INCLUDE") {
            let (path_tok, origin_tok) = match args {
                [p] => (p, None),
                [p, o] => (p, Some(o)),
                _ => {
                    return Err(ParseError::Syntax {
                        location,
                        message: format!(
                            "$INCLUDE takes a file name and an optional origin, found {} arguments",
                            args.len()
                        ),
                    });
                }
            };
            let origin = match origin_tok {
                Some(o) => owner_name(o.text, &state.origin, &location)?,
                None => state.origin.clone(),
            };
            let path_text = token_string(path_tok).map_err(|reason| ParseError::Syntax {
                location: location.clone(),
                message: format!("bad $INCLUDE file name: {reason}"),
            })?;
            self.include(
                Path::new(path_text.as_ref()),
                location,
                FileState {
                    origin,
                    last_owner: state.last_owner.clone(),
                },
                depth,
            )?;
        } else {
            return Err(ParseError::UnknownDirective {
                location,
                directive: name.to_owned(),
            });
        }
        Ok(())
    }

    /// Reads the file named by an `$INCLUDE` line, splicing its records in.
    fn include(
        &mut self,
        written: &Path,
        location: Location,
        state: FileState,
        depth: usize,
    ) -> Result<(), ParseError> {
        let fail = |reason: String| ParseError::Include {
            location: location.clone(),
            path: written.to_path_buf(),
            reason,
        };
        if depth >= MAX_INCLUDE_DEPTH {
            return Err(fail(format!(
                "includes are nested more than {MAX_INCLUDE_DEPTH} deep; flatten the include chain"
            )));
        }
        let root = match &self.canonical_root {
            Some(root) => root.clone(),
            None => {
                let root = self.include_root.canonicalize().map_err(|e| {
                    fail(format!(
                        "the zones directory '{}' cannot be resolved: {e}",
                        self.include_root.display()
                    ))
                })?;
                self.canonical_root = Some(root.clone());
                root
            }
        };
        let joined = self.include_root.join(written);
        let canonical = joined
            .canonicalize()
            .map_err(|e| fail(format!("cannot open '{}': {e}", joined.display())))?;
        if !canonical.starts_with(&root) {
            return Err(fail(format!(
                "resolves to '{}', which is outside the zones directory '{}'; only files inside it may be included",
                canonical.display(),
                root.display()
            )));
        }
        if self.stack.contains(&canonical) {
            let chain: Vec<String> = self
                .stack
                .iter()
                .chain(std::iter::once(&canonical))
                .map(|p| p.display().to_string())
                .collect();
            return Err(fail(format!(
                "include loop: {}; remove the $INCLUDE that closes the loop",
                chain.join(" -> ")
            )));
        }
        let bytes = std::fs::read(&canonical)
            .map_err(|e| fail(format!("cannot read '{}': {e}", joined.display())))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| fail(format!("'{}' is not valid UTF-8", joined.display())))?;
        tracing::debug!(file = %joined.display(), depth = depth + 1, "reading included zone file");
        let file: Arc<Path> = Arc::from(joined.as_path());
        self.stack.push(canonical);
        let result = self.read_text(&text, &file, state, depth + 1);
        self.stack.pop();
        result
    }

    /// Handles one resource record line.
    fn record(
        &mut self,
        tokens: &[Token<'_>],
        leading_blank: bool,
        location: Location,
        state: &mut FileState,
    ) -> Result<(), ParseError> {
        let mut rest = tokens;
        let owner = if leading_blank {
            match &state.last_owner {
                Some(owner) => owner.clone(),
                None => {
                    return Err(ParseError::Syntax {
                        location,
                        message: "no owner name: a line starting with blanks repeats the previous record's owner, but there is none yet; write the owner at the start of the line".into(),
                    });
                }
            }
        } else {
            let (first, tail) = split_first(rest);
            rest = tail;
            owner_name(first.text, &state.origin, &location)?
        };

        let mut ttl: Option<u32> = None;
        let mut class_seen = false;
        while let Some((tok, tail)) = rest.split_first() {
            if tok.quoted {
                break;
            }
            if tok.text.as_bytes().first().is_some_and(u8::is_ascii_digit) {
                if ttl.is_some() {
                    return Err(ParseError::Syntax {
                        location,
                        message: format!("second TTL '{}': write at most one TTL", tok.text),
                    });
                }
                ttl = Some(ttl_value(tok.text, &location)?);
            } else if let Some(is_in) = class_kind(tok.text) {
                if !is_in {
                    return Err(ParseError::UnsupportedClass {
                        location,
                        class: tok.text.to_owned(),
                    });
                }
                if class_seen {
                    return Err(ParseError::Syntax {
                        location,
                        message: "class IN written twice".into(),
                    });
                }
                class_seen = true;
            } else {
                break;
            }
            rest = tail;
        }

        let Some((type_tok, rdata_toks)) = rest.split_first() else {
            return Err(ParseError::Syntax {
                location,
                message: "missing record type: expected <owner> [TTL] [class] <type> <data>".into(),
            });
        };
        if type_tok.quoted {
            return Err(ParseError::UnknownType {
                location,
                mnemonic: format!("\"{}\"", type_tok.text),
            });
        }
        let Some(rtype) = record_type(type_tok.text) else {
            return Err(ParseError::UnknownType {
                location,
                mnemonic: type_tok.text.to_owned(),
            });
        };

        let ttl = match ttl.or(self.default_ttl).or(self.last_ttl) {
            Some(ttl) => ttl,
            None => return Err(ParseError::NoTtl { location }),
        };

        let rdata = build_rdata(rtype, rdata_toks, &state.origin).map_err(|e| match e {
            RdataError::Bad(reason) => ParseError::BadRdata {
                location: location.clone(),
                rtype: type_name(rtype),
                reason,
            },
            RdataError::Unsupported(reason) => ParseError::UnsupportedType {
                location: location.clone(),
                rtype: type_name(rtype),
                reason,
            },
        })?;

        self.last_ttl = Some(ttl);
        state.last_owner = Some(owner.clone());
        self.records.push(SourceRecord {
            name: owner,
            ttl,
            rdata,
            location,
        });
        Ok(())
    }
}

/// Splits off the first token of a non-empty slice (the lexer never yields empty entries).
fn split_first<'t, 'a>(tokens: &'t [Token<'a>]) -> (Token<'a>, &'t [Token<'a>]) {
    match tokens.split_first() {
        Some((first, rest)) => (*first, rest),
        None => (
            Token {
                text: "",
                quoted: false,
            },
            tokens,
        ),
    }
}

/// Parses an owner or origin name, mapping failures to [`ParseError::BadName`].
fn owner_name(text: &str, origin: &Name, location: &Location) -> Result<Name, ParseError> {
    parse_name(text, origin).map_err(|reason| ParseError::BadName {
        location: location.clone(),
        name: text.to_owned(),
        reason,
    })
}

/// Parses a TTL with optional units (`1h30m`), limited to 2^31-1.
fn ttl_value(text: &str, location: &Location) -> Result<u32, ParseError> {
    let bad = |reason: &str| ParseError::BadTtl {
        location: location.clone(),
        value: text.to_owned(),
        reason: reason.to_owned(),
    };
    let ttl = parse_ttl(text).map_err(|_| {
        bad("expected seconds or a duration such as 300, 1h or 1d12h (units s, m, h, d, w)")
    })?;
    if ttl > MAX_TTL {
        return Err(bad("TTLs above 2147483647 are not allowed (RFC 2181)"));
    }
    Ok(ttl)
}

/// Classifies a token as a class: `Some(true)` for IN, `Some(false)` for another class, `None` otherwise.
fn class_kind(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("IN") || text.eq_ignore_ascii_case("CLASS1") {
        return Some(true);
    }
    /// Class mnemonics other than IN.
    const OTHERS: [&str; 6] = ["CH", "CHAOS", "HS", "HESIOD", "CS", "NONE"];
    if OTHERS.iter().any(|c| text.eq_ignore_ascii_case(c)) {
        return Some(false);
    }
    let is_classnnn = text.len() > 5
        && text.as_bytes()[..5].eq_ignore_ascii_case(b"CLASS")
        && text.as_bytes()[5..].iter().all(u8::is_ascii_digit);
    is_classnnn.then_some(false)
}

/// Type mnemonics checked before falling back to hickory's (upper-case only) parser.
const COMMON_TYPES: [(&str, RecordType); 16] = [
    ("A", RecordType::A),
    ("AAAA", RecordType::AAAA),
    ("CNAME", RecordType::CNAME),
    ("NS", RecordType::NS),
    ("SOA", RecordType::SOA),
    ("MX", RecordType::MX),
    ("TXT", RecordType::TXT),
    ("SRV", RecordType::SRV),
    ("CAA", RecordType::CAA),
    ("PTR", RecordType::PTR),
    ("HTTPS", RecordType::HTTPS),
    ("SVCB", RecordType::SVCB),
    ("HINFO", RecordType::HINFO),
    ("NAPTR", RecordType::NAPTR),
    ("SSHFP", RecordType::SSHFP),
    ("TLSA", RecordType::TLSA),
];

/// Parses a type mnemonic (case-insensitive) or `TYPEnnn`.
fn record_type(text: &str) -> Option<RecordType> {
    if let Some((_, rt)) = COMMON_TYPES
        .iter()
        .find(|(m, _)| text.eq_ignore_ascii_case(m))
    {
        return Some(*rt);
    }
    let bytes = text.as_bytes();
    if bytes.len() > 4
        && bytes[..4].eq_ignore_ascii_case(b"TYPE")
        && bytes[4..].iter().all(u8::is_ascii_digit)
    {
        return text[4..].parse::<u16>().ok().map(RecordType::from);
    }
    let upper = text.to_ascii_uppercase();
    if upper == "*" {
        return None;
    }
    upper.parse::<RecordType>().ok()
}

/// Presentation name of a type (`TYPEnnn` for types hickory does not know).
fn type_name(rtype: RecordType) -> String {
    match rtype {
        RecordType::Unknown(code) => format!("TYPE{code}"),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Names and strings
// ---------------------------------------------------------------------------

/// Parses a domain name with RFC 1035 escapes; relative names get `origin` appended.
///
/// `\DDD` escapes are decimal (hickory's own parser reads them as octal, so
/// it is not used here). Letter case is preserved.
fn parse_name(text: &str, origin: &Name) -> Result<Name, String> {
    match text {
        "@" => return Ok(origin.clone()),
        "." => return Ok(Name::root()),
        "" => return Err("empty name".into()),
        _ => {}
    }
    let bytes = text.as_bytes();
    let mut data: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut ends: Vec<usize> = Vec::with_capacity(8);
    let mut label_start = 0;
    let mut i = 0;
    let mut absolute = false;
    while i < bytes.len() {
        match bytes[i] {
            b'.' => {
                if data.len() == label_start {
                    return Err("empty label (a leading dot or two dots in a row)".into());
                }
                if data.len() - label_start > MAX_LABEL_LEN {
                    return Err(format!("a label is longer than {MAX_LABEL_LEN} octets"));
                }
                ends.push(data.len());
                label_start = data.len();
                i += 1;
                if i == bytes.len() {
                    absolute = true;
                }
            }
            b'\\' => {
                let (byte, used) = decode_escape(&bytes[i + 1..])?;
                data.push(byte);
                i += 1 + used;
            }
            b => {
                data.push(b);
                i += 1;
            }
        }
    }
    if !absolute {
        if data.len() - label_start > MAX_LABEL_LEN {
            return Err(format!("a label is longer than {MAX_LABEL_LEN} octets"));
        }
        ends.push(data.len());
    }
    let own_len: usize = data.len() + ends.len();
    let origin_len: usize = if absolute {
        0
    } else {
        origin.iter().map(|l| l.len() + 1).sum()
    };
    if own_len + origin_len + 1 > MAX_NAME_LEN {
        return Err(format!(
            "the name is {} octets long; at most {MAX_NAME_LEN} are allowed",
            own_len + origin_len + 1
        ));
    }
    let mut start = 0;
    let own = ends.iter().map(|&end| {
        let label = &data[start..end];
        start = end;
        label
    });
    let labels: Vec<&[u8]> = if absolute {
        own.collect()
    } else {
        own.chain(origin.iter()).collect()
    };
    Name::from_labels(labels).map_err(|e| e.to_string())
}

/// Decodes the escape after a backslash: `\DDD` (decimal) or `\X`; returns the byte and bytes consumed.
fn decode_escape(after: &[u8]) -> Result<(u8, usize), String> {
    match after {
        [d1, d2, d3, ..] if d1.is_ascii_digit() && d2.is_ascii_digit() && d3.is_ascii_digit() => {
            let value =
                u32::from(d1 - b'0') * 100 + u32::from(d2 - b'0') * 10 + u32::from(d3 - b'0');
            u8::try_from(value)
                .map(|b| (b, 3))
                .map_err(|_| format!("escape \\{value} is above 255"))
        }
        [d, ..] if d.is_ascii_digit() => {
            Err("a numeric escape needs exactly three decimal digits (\\DDD)".into())
        }
        [b, ..] => Ok((*b, 1)),
        [] => Err("a backslash at the end of a token escapes nothing".into()),
    }
}

/// Decodes RFC 1035 escapes in a token to raw bytes.
fn decode_bytes(text: &str) -> Result<Cow<'_, [u8]>, String> {
    let bytes = text.as_bytes();
    if !bytes.contains(&b'\\') {
        return Ok(Cow::Borrowed(bytes));
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let (byte, used) = decode_escape(&bytes[i + 1..])?;
            out.push(byte);
            i += 1 + used;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(Cow::Owned(out))
}

/// Decodes a `<character-string>` token, checking the 255-octet limit.
fn char_string<'a>(tok: &Token<'a>, what: &str) -> Result<Cow<'a, [u8]>, RdataError> {
    let bytes = decode_bytes(tok.text).map_err(|e| RdataError::Bad(format!("{what}: {e}")))?;
    if bytes.len() > MAX_STRING_LEN {
        return Err(RdataError::Bad(format!(
            "{what} is {} octets long; a string holds at most {MAX_STRING_LEN}, split it into several quoted strings",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// The text a token stands for: decoded if quoted, raw otherwise.
fn token_string<'a>(tok: &Token<'a>) -> Result<Cow<'a, str>, String> {
    if !tok.quoted {
        return Ok(Cow::Borrowed(tok.text));
    }
    match decode_bytes(tok.text)? {
        Cow::Borrowed(_) => Ok(Cow::Borrowed(tok.text)),
        Cow::Owned(bytes) => String::from_utf8(bytes)
            .map(Cow::Owned)
            .map_err(|_| "the quoted string is not valid UTF-8 once escapes are decoded".into()),
    }
}

// ---------------------------------------------------------------------------
// RDATA
// ---------------------------------------------------------------------------

/// Why RDATA could not be built.
enum RdataError {
    /// The data is malformed.
    Bad(String),
    /// The type cannot be read from presentation format.
    Unsupported(String),
}

/// Whether a type code is a meta or query type that cannot appear in a zone (RFC 6895 section 3.1).
fn is_meta(rtype: RecordType) -> bool {
    let code = u16::from(rtype);
    code == 0 || code == 41 || (128..=255).contains(&code)
}

/// Checks the number of RDATA fields; `max` of `None` means unbounded.
fn field_count(
    toks: &[Token<'_>],
    min: usize,
    max: Option<usize>,
    fields: &str,
) -> Result<(), RdataError> {
    let n = toks.len();
    if n < min {
        return Err(RdataError::Bad(format!(
            "too few fields: expected {fields}, found {n}"
        )));
    }
    if max.is_some_and(|max| n > max) {
        return Err(RdataError::Bad(format!(
            "too many fields: expected {fields}, found {n}"
        )));
    }
    Ok(())
}

/// Parses a domain name inside RDATA.
fn rdata_name(tok: &Token<'_>, origin: &Name, what: &str) -> Result<Name, RdataError> {
    parse_name(tok.text, origin)
        .map_err(|e| RdataError::Bad(format!("bad {what} '{}': {e}", tok.text)))
}

/// Parses a 16-bit decimal field.
fn rdata_u16(tok: &Token<'_>, what: &str) -> Result<u16, RdataError> {
    tok.text
        .parse::<u16>()
        .map_err(|_| RdataError::Bad(format!("bad {what} '{}': expected 0-65535", tok.text)))
}

/// Parses an SOA timer (seconds or a duration with units) that must fit in an i32.
fn soa_timer(tok: &Token<'_>, what: &str) -> Result<i32, RdataError> {
    parse_ttl(tok.text)
        .ok()
        .and_then(|v| i32::try_from(v).ok())
        .ok_or_else(|| {
            RdataError::Bad(format!(
                "bad SOA {what} '{}': expected seconds or a duration such as 1h or 2d",
                tok.text
            ))
        })
}

/// Builds the RDATA of a record of type `rtype` from its tokens.
fn build_rdata(rtype: RecordType, toks: &[Token<'_>], origin: &Name) -> Result<RData, RdataError> {
    if let Some((first, rest)) = toks.split_first()
        && !first.quoted
        && first.text == "\\#"
    {
        return generic_rdata(rtype, rest);
    }
    if is_meta(rtype) {
        return Err(RdataError::Unsupported(
            "it is a query or meta type and cannot appear in a zone file".into(),
        ));
    }
    let t = toks;
    Ok(match rtype {
        RecordType::A => {
            field_count(t, 1, Some(1), "1 (address)")?;
            let ip: Ipv4Addr = t[0]
                .text
                .parse()
                .map_err(|_| RdataError::Bad(format!("'{}' is not an IPv4 address", t[0].text)))?;
            RData::A(ip.into())
        }
        RecordType::AAAA => {
            field_count(t, 1, Some(1), "1 (address)")?;
            let ip: Ipv6Addr = t[0]
                .text
                .parse()
                .map_err(|_| RdataError::Bad(format!("'{}' is not an IPv6 address", t[0].text)))?;
            RData::AAAA(ip.into())
        }
        RecordType::CNAME | RecordType::NS | RecordType::PTR | RecordType::ANAME => {
            field_count(t, 1, Some(1), "1 (target name)")?;
            let name = rdata_name(&t[0], origin, "target name")?;
            match rtype {
                RecordType::CNAME => RData::CNAME(CNAME(name)),
                RecordType::NS => RData::NS(NS(name)),
                RecordType::PTR => RData::PTR(PTR(name)),
                _ => RData::ANAME(ANAME(name)),
            }
        }
        RecordType::MX => {
            field_count(t, 2, Some(2), "2 (preference exchange)")?;
            RData::MX(MX::new(
                rdata_u16(&t[0], "preference")?,
                rdata_name(&t[1], origin, "exchange")?,
            ))
        }
        RecordType::SRV => {
            field_count(t, 4, Some(4), "4 (priority weight port target)")?;
            RData::SRV(SRV::new(
                rdata_u16(&t[0], "priority")?,
                rdata_u16(&t[1], "weight")?,
                rdata_u16(&t[2], "port")?,
                rdata_name(&t[3], origin, "target")?,
            ))
        }
        RecordType::SOA => {
            field_count(
                t,
                7,
                Some(7),
                "7 (mname rname serial refresh retry expire minimum)",
            )?;
            let serial = t[2].text.parse::<u32>().map_err(|_| {
                RdataError::Bad(format!(
                    "bad SOA serial '{}': expected a number 0-4294967295",
                    t[2].text
                ))
            })?;
            let minimum = soa_timer(&t[6], "minimum")?;
            RData::SOA(SOA::new(
                rdata_name(&t[0], origin, "SOA mname")?,
                rdata_name(&t[1], origin, "SOA rname")?,
                serial,
                soa_timer(&t[3], "refresh")?,
                soa_timer(&t[4], "retry")?,
                soa_timer(&t[5], "expire")?,
                minimum.unsigned_abs(),
            ))
        }
        RecordType::TXT => {
            field_count(t, 1, None, "at least 1 string")?;
            let strings = t
                .iter()
                .map(|tok| char_string(tok, "TXT string"))
                .collect::<Result<Vec<_>, _>>()?;
            RData::TXT(TXT::from_bytes(strings.iter().map(AsRef::as_ref).collect()))
        }
        RecordType::HINFO => {
            field_count(t, 2, Some(2), "2 (cpu os)")?;
            let cpu = char_string(&t[0], "HINFO cpu")?;
            let os = char_string(&t[1], "HINFO os")?;
            RData::HINFO(HINFO::from_bytes(cpu.into(), os.into()))
        }
        RecordType::NAPTR => {
            field_count(
                t,
                6,
                Some(6),
                "6 (order preference flags service regexp replacement)",
            )?;
            let flags = char_string(&t[2], "NAPTR flags")?;
            if !verify_flags(&flags) {
                return Err(RdataError::Bad(format!(
                    "bad NAPTR flags '{}': only letters and digits are allowed",
                    t[2].text
                )));
            }
            RData::NAPTR(NAPTR::new(
                rdata_u16(&t[0], "order")?,
                rdata_u16(&t[1], "preference")?,
                flags.into(),
                char_string(&t[3], "NAPTR service")?.into(),
                char_string(&t[4], "NAPTR regexp")?.into(),
                rdata_name(&t[5], origin, "replacement")?,
            ))
        }
        RecordType::SVCB | RecordType::HTTPS => {
            field_count(t, 2, None, "at least 2 (priority target [params...])")?;
            let target = rdata_name(&t[1], origin, "target")?;
            // Hand hickory a placeholder target (it cannot resolve relative
            // names), then put the real one in.
            let placeholder = Token {
                text: ".",
                quoted: false,
            };
            let toks = std::iter::once(&t[0])
                .chain(std::iter::once(&placeholder))
                .chain(&t[2..]);
            match via_hickory(rtype, toks)? {
                RData::SVCB(mut svcb) => {
                    svcb.target_name = target;
                    RData::SVCB(svcb)
                }
                RData::HTTPS(HTTPS(mut svcb)) => {
                    svcb.target_name = target;
                    RData::HTTPS(HTTPS(svcb))
                }
                other => other,
            }
        }
        RecordType::CAA => {
            field_count(t, 3, Some(3), "3 (flags tag value)")?;
            via_hickory(rtype, t.iter())?
        }
        RecordType::SSHFP => {
            field_count(t, 3, None, "3 (algorithm type fingerprint)")?;
            // Allow the fingerprint to be split by blanks, as TLSA allows.
            let joined: String = t[2..].iter().map(|tok| tok.text).collect();
            let fingerprint = Token {
                text: &joined,
                quoted: false,
            };
            via_hickory(rtype, t[..2].iter().chain(std::iter::once(&fingerprint)))?
        }
        RecordType::TLSA => {
            field_count(t, 4, None, "4 (usage selector matching data)")?;
            via_hickory(rtype, t.iter())?
        }
        RecordType::CERT | RecordType::CSYNC | RecordType::OPENPGPKEY | RecordType::SMIMEA => {
            via_hickory(rtype, t.iter())?
        }
        RecordType::Unknown(code) => {
            return Err(RdataError::Bad(format!(
                "TYPE{code} has no known text format; write its data in RFC 3597 generic form: \\# <length> <hex>"
            )));
        }
        _ => {
            return Err(RdataError::Unsupported(
                "hickory-proto cannot read its text format; write its data in RFC 3597 generic form (\\# <length> <hex>) instead".into(),
            ));
        }
    })
}

/// Parses RDATA with hickory's presentation-format parser.
///
/// Every token is passed as a quoted string (escaping `\` and `"`), so
/// hickory's lexer yields exactly the token's text: decoded for quoted
/// tokens, raw for unquoted ones.
fn via_hickory<'t, 'a: 't>(
    rtype: RecordType,
    toks: impl Iterator<Item = &'t Token<'a>>,
) -> Result<RData, RdataError> {
    let mut text = String::new();
    for tok in toks {
        let value = token_string(tok).map_err(RdataError::Bad)?;
        text.push('"');
        for ch in value.chars() {
            if ch == '"' || ch == '\\' {
                text.push('\\');
            }
            text.push(ch);
        }
        text.push_str("\" ");
    }
    RData::try_from_str(rtype, &text).map_err(|e| RdataError::Bad(e.to_string()))
}

/// Builds RDATA from RFC 3597 generic data (`\# <length> <hex>...`, tokens after `\#`).
fn generic_rdata(rtype: RecordType, toks: &[Token<'_>]) -> Result<RData, RdataError> {
    if is_meta(rtype) {
        return Err(RdataError::Unsupported(
            "it is a query or meta type and cannot appear in a zone file".into(),
        ));
    }
    let Some((len_tok, hex_toks)) = toks.split_first() else {
        return Err(RdataError::Bad(
            "generic data needs a length: \\# <length> <hex>".into(),
        ));
    };
    let len = len_tok.text.parse::<u16>().map_err(|_| {
        RdataError::Bad(format!(
            "bad generic data length '{}': expected 0-65535",
            len_tok.text
        ))
    })?;
    let mut bytes = Vec::with_capacity(usize::from(len));
    let mut high: Option<u8> = None;
    for tok in hex_toks {
        for &c in tok.text.as_bytes() {
            let nibble = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => {
                    return Err(RdataError::Bad(format!(
                        "bad generic data '{}': not hexadecimal",
                        tok.text
                    )));
                }
            };
            match high.take() {
                Some(h) => bytes.push(h << 4 | nibble),
                None => high = Some(nibble),
            }
        }
    }
    if high.is_some() {
        return Err(RdataError::Bad(
            "generic data has an odd number of hex digits".into(),
        ));
    }
    if bytes.len() != usize::from(len) {
        return Err(RdataError::Bad(format!(
            "generic data length {len} does not match the {} octets of hex data",
            bytes.len()
        )));
    }
    if let RecordType::Unknown(_) = rtype {
        let rdata = if bytes.is_empty() {
            NULL::new()
        } else {
            NULL::with(bytes)
        };
        return Ok(RData::Unknown { code: rtype, rdata });
    }
    let mut decoder = BinDecoder::new(&bytes);
    RData::read(&mut decoder, rtype, Restrict::new(len)).map_err(|e| {
        RdataError::Bad(format!(
            "generic data does not decode as {}: {e}",
            type_name(rtype)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `text` as `test.zone` of `example.com.` with no usable include root.
    fn check(text: &str) -> Result<Vec<SourceRecord>, ParseError> {
        let origin = Name::from_ascii("example.com.").map_err(|e| ParseError::Syntax {
            location: loc(&Arc::from(Path::new("test.zone")), 0),
            message: e.to_string(),
        })?;
        parse_zone_str(
            text,
            Path::new("test.zone"),
            &origin,
            Path::new("/nonexistent-zones-dir"),
        )
    }

    /// Renders records as `owner ttl type rdata @line` for compact comparisons.
    fn render(records: &[SourceRecord]) -> Vec<String> {
        records
            .iter()
            .map(|r| {
                format!(
                    "{} {} {} {} @{}",
                    r.name,
                    r.ttl,
                    type_name(r.rdata.record_type()),
                    r.rdata,
                    r.location.line
                )
            })
            .collect()
    }

    /// Asserts that `text` parses to records rendering as `expected`.
    fn ok(text: &str, expected: &[&str]) {
        match check(text) {
            Ok(records) => assert_eq!(render(&records), expected, "zone:\n{text}"),
            Err(e) => panic!("unexpected error: {e}\nzone:\n{text}"),
        }
    }

    /// Asserts that `text` fails at `line` with a message containing `needle`.
    fn err(text: &str, line: u32, needle: &str) {
        match check(text) {
            Ok(records) => panic!("expected an error, got {:?}", render(&records)),
            Err(e) => {
                let msg = e.to_string();
                assert_eq!(e.location().map(|l| l.line), Some(line), "{msg}");
                assert!(
                    msg.starts_with(&format!("test.zone:{line}: ")),
                    "bad prefix: {msg}"
                );
                assert!(msg.contains(needle), "'{msg}' lacks '{needle}'");
            }
        }
    }

    /// Plain records, blank lines and comments in odd places.

    #[test]
    fn basic_records_and_comments() {
        ok(
            "; leading comment\n\
             \n\
             $TTL 300 ; default\n\
             www A 192.0.2.1;no space before comment\n\
             \t; indented comment only\n\
             mail.example.com. 60 IN A 192.0.2.2\n",
            &[
                "www.example.com. 300 A 192.0.2.1 @4",
                "mail.example.com. 60 A 192.0.2.2 @6",
            ],
        );
    }

    /// CRLF line ends, a byte-order mark and a TXT split over lines.

    #[test]
    fn crlf_bom_and_multiline_txt() {
        ok(
            "\u{feff}$TTL 1\r\na A 192.0.2.1\r\n\r\nb TXT ( \"p1\" ; c\r\n  \"p2\" )\r\nc A 192.0.2.2",
            &[
                "a.example.com. 1 A 192.0.2.1 @2",
                "b.example.com. 1 TXT p1p2 @4",
                "c.example.com. 1 A 192.0.2.2 @6",
            ],
        );
    }

    /// `$ORIGIN`, absolute and relative, and its argument checks.

    #[test]
    fn origin_directive() {
        ok(
            "$TTL 1h\n\
             $ORIGIN sub\n\
             a A 192.0.2.1\n\
             $ORIGIN other.test.\n\
             @ A 192.0.2.2\n\
             b.other.test. A 192.0.2.3\n\
             $origin example.com.\n\
             c A 192.0.2.4\n",
            &[
                "a.sub.example.com. 3600 A 192.0.2.1 @3",
                "other.test. 3600 A 192.0.2.2 @5",
                "b.other.test. 3600 A 192.0.2.3 @6",
                "c.example.com. 3600 A 192.0.2.4 @8",
            ],
        );
        err("$ORIGIN\n", 1, "exactly one");
        err("$ORIGIN a b\n", 1, "exactly one");
        err("$TTL 1 2\n", 1, "exactly one");
    }

    /// An unknown `$DIRECTIVE` is rejected on its line.

    #[test]
    fn unknown_directive() {
        err("$TTL 1\n$GENERATE 1-2 a A 192.0.2.1\n", 2, "$GENERATE");
    }

    /// Explicit TTL, then `$TTL`, then the previous record's TTL, else an error.

    #[test]
    fn ttl_resolution_order() {
        ok(
            "a 10 A 192.0.2.1\n\
             b A 192.0.2.2\n\
             $TTL 20\n\
             c A 192.0.2.3\n\
             d 30 A 192.0.2.4\n\
             e A 192.0.2.5\n\
             $TTL 2d\n\
             f A 192.0.2.6\n",
            &[
                "a.example.com. 10 A 192.0.2.1 @1",
                "b.example.com. 10 A 192.0.2.2 @2",
                "c.example.com. 20 A 192.0.2.3 @4",
                "d.example.com. 30 A 192.0.2.4 @5",
                "e.example.com. 20 A 192.0.2.5 @6",
                "f.example.com. 172800 A 192.0.2.6 @8",
            ],
        );
        err(
            "\n\na A 192.0.2.1\n",
            3,
            "no TTL: add $TTL or a TTL on the record",
        );
    }

    /// TTL and class may come in either order, each optional.

    #[test]
    fn ttl_and_class_in_either_order() {
        ok(
            "a 10 IN A 192.0.2.1\n\
             b IN 20 A 192.0.2.2\n\
             c in a 192.0.2.3\n\
             d 1h30m A 192.0.2.4\n\
             e CLASS1 40 A 192.0.2.5\n",
            &[
                "a.example.com. 10 A 192.0.2.1 @1",
                "b.example.com. 20 A 192.0.2.2 @2",
                "c.example.com. 20 A 192.0.2.3 @3",
                "d.example.com. 5400 A 192.0.2.4 @4",
                "e.example.com. 40 A 192.0.2.5 @5",
            ],
        );
    }

    /// Bad TTLs and non-IN classes are rejected on the right line.

    #[test]
    fn bad_ttls_and_classes() {
        err("$TTL 1\na 5x A 192.0.2.1\n", 2, "bad TTL '5x'");
        err("$TTL 1\n\na 1 2 A 192.0.2.1\n", 3, "second TTL");
        err("$TTL 3000000000\n", 1, "RFC 2181");
        err("$TTL abc\n", 1, "bad TTL 'abc'");
        err("$TTL 1\na CH A 192.0.2.1\n", 2, "class CH is not supported");
        err("$TTL 1\na 5 HS A 192.0.2.1\n", 2, "class HS");
        err("$TTL 1\na CLASS3 A 192.0.2.1\n", 2, "class CLASS3");
        err("$TTL 1\na IN IN A 192.0.2.1\n", 2, "twice");
    }

    /// Lines starting with blanks reuse the previous owner.

    #[test]
    fn owner_inheritance() {
        ok(
            "$TTL 1\n\
             www A 192.0.2.1\n\
             \tAAAA 2001:db8::1\n\
             \x20   IN TXT hello\n\
             $ORIGIN other.test.\n\
             \tA 192.0.2.2\n\
             @ A 192.0.2.3\n",
            &[
                "www.example.com. 1 A 192.0.2.1 @2",
                "www.example.com. 1 AAAA 2001:db8::1 @3",
                "www.example.com. 1 TXT hello @4",
                "www.example.com. 1 A 192.0.2.2 @6",
                "other.test. 1 A 192.0.2.3 @7",
            ],
        );
        err("$TTL 1\n\n  A 192.0.2.1\n", 3, "no owner name");
    }

    /// A multi-line SOA with relative names and timer units.

    #[test]
    fn parentheses_and_soa_units() {
        let recs = check(
            "$TTL 1h\n\
             @ IN SOA ns1 hostmaster ( ; comment after paren\n\
             \t2024010101 ; serial\n\
             \n\
             \t1h ; refresh\n\
             \t15m 2w ; retry expire\n\
             \t300 )\n\
             @ NS ns1\n",
        );
        let recs = recs.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].location.line, 2);
        assert_eq!(recs[1].location.line, 8);
        let RData::SOA(soa) = &recs[0].rdata else {
            panic!("not SOA: {:?}", recs[0].rdata);
        };
        assert_eq!(soa.mname.to_string(), "ns1.example.com.");
        assert_eq!(soa.rname.to_string(), "hostmaster.example.com.");
        assert_eq!(soa.serial, 2_024_010_101);
        assert_eq!(soa.refresh, 3600);
        assert_eq!(soa.retry, 900);
        assert_eq!(soa.expire, 1_209_600);
        assert_eq!(soa.minimum, 300);
        ok(
            "$TTL 1\n(a\n A\n 192.0.2.1)\nb ( A ) ( 192.0.2.2 )\n",
            &[
                "a.example.com. 1 A 192.0.2.1 @2",
                "b.example.com. 1 A 192.0.2.2 @5",
            ],
        );
    }

    /// Unbalanced parentheses and unterminated quotes.

    #[test]
    fn paren_and_quote_errors() {
        err(
            "$TTL 1\n@ SOA ns1 host (\n 1 2 3 4 5\n\n",
            2,
            "never closed",
        );
        err("$TTL 1\na A 192.0.2.1 )\n", 2, "without a matching '('");
        err("$TTL 1\na ( A ( 192.0.2.1 ) )\n", 2, "nested");
        err(
            "$TTL 1\na TXT \"abc\nb A 192.0.2.1\n",
            2,
            "unterminated quoted string",
        );
        err("$TTL 1\na TXT abc\\\n", 2, "backslash");
    }

    /// Quoted TXT strings with blanks, `;` and escapes.

    #[test]
    fn txt_strings() {
        let recs = check(
            "$TTL 1\n\
             a TXT \"v=spf1 -all; not a comment\" ; a comment\n\
             b TXT \"one\" \"two words\" three\n\
             c TXT \"q\\\"uote\" \"back\\\\slash\" \"\\065\\066C\" \"\"\n\
             d TXT \"\\200\\255\" e\\032f\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let txt = |i: usize| -> Vec<Vec<u8>> {
            match &recs[i].rdata {
                RData::TXT(t) => t.txt_data.iter().map(|s| s.to_vec()).collect(),
                other => panic!("not TXT: {other:?}"),
            }
        };
        assert_eq!(txt(0), vec![b"v=spf1 -all; not a comment".to_vec()]);
        assert_eq!(
            txt(1),
            vec![b"one".to_vec(), b"two words".to_vec(), b"three".to_vec()]
        );
        assert_eq!(
            txt(2),
            vec![
                b"q\"uote".to_vec(),
                b"back\\slash".to_vec(),
                b"ABC".to_vec(),
                Vec::new()
            ]
        );
        assert_eq!(txt(3), vec![vec![200, 255], b"e f".to_vec()]);
        let long = "x".repeat(256);
        err(&format!("$TTL 1\na TXT \"{long}\"\n"), 2, "at most 255");
        err("$TTL 1\na TXT\n", 2, "too few fields");
        err("$TTL 1\na TXT \"\\256\"\n", 2, "above 255");
    }

    /// Every supported record type in presentation format.

    #[test]
    fn every_listed_type() {
        ok(
            "$TTL 60\n\
             @ SOA ns1.example.com. admin.example.com. 1 7200 3600 1209600 300\n\
             @ NS ns1\n\
             @ MX 10 mail\n\
             a A 192.0.2.1\n\
             a AAAA 2001:db8::1\n\
             c CNAME a\n\
             4.2.0.192.in-addr.arpa. PTR a\n\
             _sip._tcp SRV 10 20 5060 sip\n\
             @ CAA 0 issue \"ca.example.net; account=1\"\n\
             h HINFO \"Generic PC\" Linux\n\
             n NAPTR 100 50 \"s\" \"SIP+D2U\" \"\" _sip._udp\n\
             s SSHFP 1 1 123456789abcdef67890123456789abcdef67890\n\
             _443._tcp TLSA 3 1 1 d2abde240d7cd3ee6b4b28c54df034b9 7983a1d16e8a410e4561cb106618e971\n\
             @ HTTPS 1 . alpn=\"h2,h3\" port=443\n\
             _dns SVCB 1 dns key7=\"a b\"\n",
            &[
                "example.com. 60 SOA ns1.example.com. admin.example.com. 1 7200 3600 1209600 300 @2",
                "example.com. 60 NS ns1.example.com. @3",
                "example.com. 60 MX 10 mail.example.com. @4",
                "a.example.com. 60 A 192.0.2.1 @5",
                "a.example.com. 60 AAAA 2001:db8::1 @6",
                "c.example.com. 60 CNAME a.example.com. @7",
                "4.2.0.192.in-addr.arpa. 60 PTR a.example.com. @8",
                "_sip._tcp.example.com. 60 SRV 10 20 5060 sip.example.com. @9",
                "example.com. 60 CAA 0 issue \"ca.example.net; account=1\" @10",
                "h.example.com. 60 HINFO Generic PC Linux @11",
                "n.example.com. 60 NAPTR 100 50 \"s\" \"SIP+D2U\" \"\" _sip._udp.example.com. @12",
                "s.example.com. 60 SSHFP 1 1 123456789abcdef67890123456789abcdef67890 @13",
                "_443._tcp.example.com. 60 TLSA 3 1 1 d2abde240d7cd3ee6b4b28c54df034b97983a1d16e8a410e4561cb106618e971 @14",
                "example.com. 60 HTTPS 1 . alpn=h2,h3, port=443 @15",
                "_dns.example.com. 60 SVCB 1 dns.example.com. key7=\"a b\", @16",
            ],
        );
    }

    /// Relative names inside RDATA get the current origin.

    #[test]
    fn relative_names_in_rdata() {
        ok(
            "$TTL 1\n\
             $ORIGIN sub.example.com.\n\
             a CNAME @\n\
             b NS ns.other.test.\n\
             c MX 0 .\n\
             d SRV 0 0 0 .\n\
             e HTTPS 0 svc\n\
             f SVCB 0 svc.other.test.\n",
            &[
                "a.sub.example.com. 1 CNAME sub.example.com. @3",
                "b.sub.example.com. 1 NS ns.other.test. @4",
                "c.sub.example.com. 1 MX 0 . @5",
                "d.sub.example.com. 1 SRV 0 0 0 . @6",
                "e.sub.example.com. 1 HTTPS 0 svc.sub.example.com. @7",
                "f.sub.example.com. 1 SVCB 0 svc.other.test. @8",
            ],
        );
    }

    /// Name escapes are decoded and letter case is kept.

    #[test]
    fn names_with_escapes_and_case() {
        let recs = check(
            "$TTL 1\n\
             a\\.b A 192.0.2.1\n\
             \\065x A 192.0.2.2\n\
             WwW.Example.COM. CNAME Target\\.X\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let labels = |n: &Name| -> Vec<Vec<u8>> { n.iter().map(<[u8]>::to_vec).collect() };
        assert_eq!(
            labels(&recs[0].name),
            vec![b"a.b".to_vec(), b"example".to_vec(), b"com".to_vec()]
        );
        assert_eq!(labels(&recs[1].name)[0], b"Ax".to_vec());
        assert_eq!(labels(&recs[2].name)[0], b"WwW".to_vec());
        assert_eq!(labels(&recs[2].name)[1], b"Example".to_vec());
        let RData::CNAME(target) = &recs[2].rdata else {
            panic!("not CNAME");
        };
        assert_eq!(labels(&target.0)[0], b"Target.X".to_vec());
        assert!(recs.iter().all(|r| r.name.is_fqdn()));
    }

    /// Over-long names, over-long labels and empty labels.

    #[test]
    fn name_errors() {
        let label = "a".repeat(63);
        let long = format!("{label}.{label}.{label}.{label}.");
        err(&format!("$TTL 1\n{long} A 192.0.2.1\n"), 2, "octets long");
        let relative = format!("{label}.{label}.{label}.{}", "b".repeat(50));
        err(
            &format!("$TTL 1\n{relative} A 192.0.2.1\n"),
            2,
            "octets long",
        );
        err("$TTL 1\na..b A 192.0.2.1\n", 2, "empty label");
        err("$TTL 1\n.a A 192.0.2.1\n", 2, "empty label");
        err(
            &format!("$TTL 1\n{}x A 192.0.2.1\n", label),
            2,
            "longer than 63",
        );
        err("$TTL 1\nx CNAME a..b\n", 2, "bad CNAME record data");
        err("$ORIGIN a..b\n", 1, "bad domain name 'a..b'");
    }

    /// RFC 3597 generic data for unknown and known types.

    #[test]
    fn generic_rdata() {
        let recs = check(
            "$TTL 1\n\
             a TYPE65534 \\# 3 010203\n\
             b A \\# 4 c0000201\n\
             c TYPE1 \\# 4 C0 00 02 02\n\
             d type65534 \\# 0\n\
             e TYPE1 192.0.2.3\n\
             f TXT \\# 4 03616263\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        match &recs[0].rdata {
            RData::Unknown { code, rdata } => {
                assert_eq!(*code, RecordType::Unknown(65534));
                assert_eq!(rdata.anything, vec![1, 2, 3]);
            }
            other => panic!("not unknown: {other:?}"),
        }
        assert_eq!(
            render(&recs[1..]),
            [
                "b.example.com. 1 A 192.0.2.1 @3",
                "c.example.com. 1 A 192.0.2.2 @4",
                "d.example.com. 1 TYPE65534  @5",
                "e.example.com. 1 A 192.0.2.3 @6",
                "f.example.com. 1 TXT abc @7",
            ]
        );
        let dname = check("$TTL 1\na DNAME \\# 3 016200\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dname[0].rdata.record_type(), RecordType::DNAME);
        err("$TTL 1\n\na TYPE65534 \\# 4 010203\n", 3, "does not match");
        err("$TTL 1\na TYPE65534 \\# 3 01020\n", 2, "odd number");
        err("$TTL 1\na TYPE65534 \\# 1 zz\n", 2, "not hexadecimal");
        err("$TTL 1\na TYPE65534 \\#\n", 2, "needs a length");
        err("$TTL 1\na TYPE65534 010203\n", 2, "RFC 3597 generic form");
        err("$TTL 1\na A \\# 3 c00002\n", 2, "does not decode as A");
        err("$TTL 1\na ANY \\# 0\n", 2, "meta type");
    }

    /// Unknown types, malformed RDATA and unsupported types.

    #[test]
    fn rdata_errors() {
        err("$TTL 1\n\na FOO 1\n", 3, "unknown record type 'FOO'");
        err("$TTL 1\na 300\n", 2, "missing record type");
        err("$TTL 1\na A 192.0.2.300\n", 2, "bad A record data");
        err("$TTL 1\na A 192.0.2.1 192.0.2.2\n", 2, "too many fields");
        err(
            "$TTL 1\na MX 10\n",
            2,
            "too few fields: expected 2 (preference exchange), found 1",
        );
        err("$TTL 1\na MX 70000 b\n", 2, "bad preference");
        err("$TTL 1\n@ SOA a b 1 2 3 4\n", 2, "too few fields");
        err(
            "$TTL 1\n@ SOA ( a b 1\n 2 3\n 4 5x )\n",
            2,
            "bad SOA minimum '5x'",
        );
        err("$TTL 1\na CAA x issue y\n", 2, "bad CAA record data");
        err("$TTL 1\na SSHFP 1 1 xyz\n", 2, "bad SSHFP record data");
        err("$TTL 1\na HTTPS 1 . bogus=1\n", 2, "bad HTTPS record data");
        err(
            "$TTL 1\na DNAME b\n",
            2,
            "record type DNAME is not supported",
        );
        err(
            "$TTL 1\na DS 1 2 3 abcd\n",
            2,
            "record type DS is not supported",
        );
        err("$TTL 1\na RRSIG x\n", 2, "RRSIG is not supported");
        err("$TTL 1\na AXFR x\n", 2, "meta type");
        err("$TTL 1\na NAPTR 1 1 \"!\" \"\" \"\" .\n", 2, "NAPTR flags");
        err("$TTL 1\na \"A\" 192.0.2.1\n", 2, "unknown record type");
    }

    /// I/O errors carry no line and format as `file: ...`.

    #[test]
    fn display_formats() {
        let e = ParseError::Io {
            file: Arc::from(Path::new("z.zone")),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "gone"),
        };
        assert_eq!(e.to_string(), "z.zone: cannot read zone file: gone");
        assert!(e.location().is_none());
        let origin = Name::root();
        let missing = parse_zone_file(Path::new("/nonexistent/z.zone"), &origin, Path::new("/"));
        assert!(matches!(missing, Err(ParseError::Io { .. })));
    }

    /// Helpers for `$INCLUDE` tests on a temporary zones directory.
    mod include {
        use super::*;

        /// Writes `files` into a fresh zones directory and parses `main.zone` there.
        fn run(
            files: &[(&str, &str)],
        ) -> (tempfile::TempDir, Result<Vec<SourceRecord>, ParseError>) {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            for (name, text) in files {
                let path = dir.path().join(name);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
                }
                std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
            }
            let origin = Name::from_ascii("example.com.").unwrap_or_else(|e| panic!("{e}"));
            let result = parse_zone_file(&dir.path().join("main.zone"), &origin, dir.path());
            (dir, result)
        }

        /// Renders records with their file name (relative to the zones dir) and line.
        fn render_files(dir: &Path, records: &[SourceRecord]) -> Vec<String> {
            records
                .iter()
                .map(|r| {
                    let file = r
                        .location
                        .file
                        .strip_prefix(dir)
                        .unwrap_or(&r.location.file);
                    format!(
                        "{} {} {}:{}",
                        r.name,
                        r.rdata,
                        file.display(),
                        r.location.line
                    )
                })
                .collect()
        }

        /// Asserts an include error at `file:line` containing `needle`.
        fn include_err(files: &[(&str, &str)], file: &str, line: u32, needle: &str) {
            let (dir, result) = run(files);
            match result {
                Ok(r) => panic!("expected error, got {:?}", render_files(dir.path(), &r)),
                Err(e) => {
                    let msg = e.to_string();
                    let at = e.location().unwrap_or_else(|| panic!("no location: {msg}"));
                    assert_eq!(at.file.as_ref(), dir.path().join(file).as_path(), "{msg}");
                    assert_eq!(at.line, line, "{msg}");
                    assert!(msg.contains(needle), "'{msg}' lacks '{needle}'");
                }
            }
        }

        /// Included records are spliced in place; origin changes stay inside.

        #[test]
        fn splices_in_order_with_scoped_origin() {
            let (dir, result) = run(&[
                (
                    "main.zone",
                    "$TTL 1\na A 192.0.2.1\n$INCLUDE sub/inc.zone sub ; comment\nb A 192.0.2.3\n$INCLUDE \"plain.zone\"\n",
                ),
                (
                    "sub/inc.zone",
                    "\n@ A 192.0.2.2\n$ORIGIN elsewhere.test.\nx A 192.0.2.9\n",
                ),
                ("plain.zone", "c A 192.0.2.4\n"),
            ]);
            let records = result.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                render_files(dir.path(), &records),
                [
                    "a.example.com. 192.0.2.1 main.zone:2",
                    "sub.example.com. 192.0.2.2 sub/inc.zone:2",
                    "x.elsewhere.test. 192.0.2.9 sub/inc.zone:4",
                    "b.example.com. 192.0.2.3 main.zone:4",
                    "c.example.com. 192.0.2.4 plain.zone:1",
                ]
            );
        }

        /// An error in an included file names that file and line.

        #[test]
        fn errors_inside_included_file_name_it() {
            include_err(
                &[
                    ("main.zone", "$TTL 1\n$INCLUDE inc.zone\n"),
                    ("inc.zone", "a A 1.2.3\n"),
                ],
                "inc.zone",
                1,
                "bad A record data",
            );
        }

        /// A missing included file is reported on the `$INCLUDE` line.

        #[test]
        fn missing_file() {
            include_err(
                &[("main.zone", "$INCLUDE nope.zone\n")],
                "main.zone",
                1,
                "cannot open",
            );
        }

        /// `../x` and absolute paths outside the zones directory are refused.

        #[test]
        fn dotdot_escape() {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let zones = dir.path().join("zones");
            std::fs::create_dir(&zones).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(dir.path().join("x"), "a A 192.0.2.1\n")
                .unwrap_or_else(|e| panic!("{e}"));
            let result = parse_zone_str(
                "$TTL 1\n$INCLUDE ../x\n",
                Path::new("main.zone"),
                &Name::root(),
                &zones,
            );
            let e = result.err().unwrap_or_else(|| panic!("../x was included"));
            assert_eq!(e.location().map(|l| l.line), Some(2));
            let msg = e.to_string();
            assert!(
                msg.contains("../x") && msg.contains("outside the zones directory"),
                "{msg}"
            );
            // Absolute path outside the zones directory.
            let outside = dir.path().join("x");
            let text = format!("$INCLUDE {}\n", outside.display());
            let e = parse_zone_str(&text, Path::new("main.zone"), &Name::root(), &zones)
                .err()
                .unwrap_or_else(|| panic!("absolute path was included"));
            assert!(e.to_string().contains("outside the zones directory"), "{e}");
        }

        /// A symlink pointing outside the zones directory is refused.
        #[cfg(unix)]
        #[test]
        fn symlink_escape() {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let zones = dir.path().join("zones");
            std::fs::create_dir(&zones).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(dir.path().join("secret"), "a A 192.0.2.1\n")
                .unwrap_or_else(|e| panic!("{e}"));
            std::os::unix::fs::symlink(dir.path().join("secret"), zones.join("link.zone"))
                .unwrap_or_else(|e| panic!("{e}"));
            let e = parse_zone_str(
                "$INCLUDE link.zone\n",
                Path::new("m"),
                &Name::root(),
                &zones,
            )
            .err()
            .unwrap_or_else(|| panic!("symlink was followed"));
            assert!(e.to_string().contains("outside the zones directory"), "{e}");
        }

        /// Include loops are reported as such.

        #[test]
        fn include_loop() {
            include_err(
                &[
                    ("main.zone", "$TTL 1\n$INCLUDE a.zone\n"),
                    ("a.zone", "\n$INCLUDE main.zone\n"),
                ],
                "a.zone",
                2,
                "include loop",
            );
            include_err(
                &[("main.zone", "$INCLUDE main.zone\n")],
                "main.zone",
                1,
                "include loop",
            );
        }

        /// Nesting deeper than 8 is refused; exactly 8 is fine.

        #[test]
        fn depth_limit() {
            let mut files: Vec<(String, String)> =
                vec![("main.zone".into(), "$INCLUDE f1.zone\n".into())];
            for i in 1..=9 {
                files.push((format!("f{i}.zone"), format!("$INCLUDE f{}.zone\n", i + 1)));
            }
            files.push(("f10.zone".into(), "$TTL 1\na A 192.0.2.1\n".into()));
            let refs: Vec<(&str, &str)> = files
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            include_err(&refs, "f8.zone", 1, "nested more than 8 deep");
            // Exactly 8 levels is fine.
            let mut files = refs[..8].to_vec();
            files.push(("f8.zone", "$TTL 1\na A 192.0.2.1\n"));
            let (_dir, result) = run(&files);
            assert_eq!(result.map(|r| r.len()).unwrap_or_else(|e| panic!("{e}")), 1);
        }

        /// `$INCLUDE` needs one or two arguments.

        #[test]
        fn bad_include_arguments() {
            include_err(
                &[("main.zone", "$INCLUDE\n")],
                "main.zone",
                1,
                "takes a file name",
            );
            include_err(
                &[("main.zone", "$INCLUDE a b c\n")],
                "main.zone",
                1,
                "takes a file name",
            );
        }
    }

    /// A 100k-record zone parses quickly.

    #[test]
    fn large_zone_is_fast() {
        let mut text = String::from("$TTL 300\n@ SOA ns1 hostmaster 1 1h 15m 1w 5m\n");
        for i in 0..100_000 {
            text.push_str(&format!(
                "host{i} IN A 192.0.{}.{}\n",
                (i / 256) % 256,
                i % 256
            ));
        }
        let start = std::time::Instant::now();
        let records = check(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(records.len(), 100_001);
        // Generous bound: debug builds are much slower than release.
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
    }
}
