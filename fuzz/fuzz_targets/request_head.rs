//! Fuzzes the reading of clients' HTTP/1.x request heads: arbitrary bytes as the start of a
//! connection's read buffer. The parser may not panic, must take exactly one whole head or
//! nothing, must frame a body only as the head's own fields say, must find no complete head in
//! a shorter prefix of one it accepted, and must parse the same into a map kept from an earlier
//! head (as a connection keeps it) as into a fresh one.

#![no_main]

use bytes::BytesMut;
use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use meridian::balancer::downstream::{BodyState, parse_head};

/// The header limit the parser is given: small, so that the limit is reached too.
const LIMIT: usize = 2048;

fuzz_target!(|data: &[u8]| {
    let mut kept = HeaderMap::new();
    kept.insert(header::HOST, HeaderValue::from_static("old.example"));
    kept.insert(header::CONTENT_LENGTH, HeaderValue::from_static("7"));
    let mut buf = BytesMut::from(data);
    let parsed = parse_head(&mut buf, LIMIT, &mut kept);
    let fresh = parse_head(&mut BytesMut::from(data), LIMIT, &mut HeaderMap::new());
    match parsed {
        Ok(Some((request, framing))) => {
            let taken = data.len() - buf.len();
            assert!(taken > 0 && taken <= LIMIT, "a head of {taken} bytes");
            assert!(data[..taken].ends_with(b"\n"), "a head ends with its empty line");
            let Ok(Some((fresh, fresh_framing))) = fresh else {
                panic!("a kept map changed the parse");
            };
            assert_eq!(request.headers(), fresh.headers(), "a kept map kept fields");
            assert_eq!(framing, fresh_framing);
            let headers = request.headers();
            match framing.body {
                BodyState::Length(length) => {
                    assert!(length > 0);
                    assert!(headers.contains_key(header::CONTENT_LENGTH));
                    assert!(!headers.contains_key(header::TRANSFER_ENCODING));
                }
                BodyState::Chunked(_) => {
                    assert!(headers.contains_key(header::TRANSFER_ENCODING));
                    assert!(!headers.contains_key(header::CONTENT_LENGTH));
                }
                BodyState::Done => assert!(!headers.contains_key(header::TRANSFER_ENCODING)),
                BodyState::Broken => panic!("a new head cannot be broken"),
            }
            let shorter = parse_head(
                &mut BytesMut::from(&data[..taken - 1]),
                LIMIT,
                &mut HeaderMap::new(),
            );
            assert!(
                !matches!(shorter, Ok(Some(_))),
                "a prefix of a head is a head"
            );
        }
        Ok(None) => {
            assert_eq!(&buf[..], data, "an incomplete head took bytes");
            assert!(data.len() < LIMIT, "an incomplete head over the limit waits");
            assert!(matches!(fresh, Ok(None)));
        }
        Err(error) => assert_eq!(fresh.err(), Some(error), "a kept map changed the parse"),
    }
});
