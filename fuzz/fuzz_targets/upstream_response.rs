//! Fuzzes the reading of backends' HTTP/1.1 responses: arbitrary bytes as a response head
//! (for a GET and for a HEAD) and, after a chunked head or on their own, as a chunked body.
//! Neither parser may panic, take more bytes than it was given or give more body than it
//! read, and the chunked decoder must decode the same bytes the same way however they arrive:
//! all at once or one at a time. A head parsed into memory kept from an earlier head (as a
//! connection keeps it) must come out as it does parsed afresh.

#![no_main]

use bytes::BytesMut;
use http::{HeaderMap, HeaderValue, Method, header};
use libfuzzer_sys::fuzz_target;
use meridian::balancer::upstream::{Chunked, Decoded, Framing, HeadScratch, parse_head};

fuzz_target!(|data: &[u8]| {
    // Memory kept from head to head, as a connection keeps it: it starts with a request's map.
    let mut scratch = HeadScratch::default();
    let mut request = HeaderMap::new();
    request.insert(header::HOST, HeaderValue::from_static("b.example"));
    request.insert(header::CONTENT_LENGTH, HeaderValue::from_static("7"));
    scratch.recycle(request);
    for method in [Method::GET, Method::HEAD] {
        let mut buf = BytesMut::from(data);
        let parsed = parse_head(&mut buf, &method, &mut scratch);
        let fresh = parse_head(
            &mut BytesMut::from(data),
            &method,
            &mut HeadScratch::default(),
        );
        match parsed {
            Ok(Some(head)) => {
                assert!(buf.len() < data.len(), "a head took no bytes");
                let Ok(Some(fresh)) = fresh else {
                    panic!("reused memory changed the parse");
                };
                assert_eq!(head.headers, fresh.headers, "a reused map kept fields");
                if method == Method::HEAD {
                    assert_eq!(head.framing, Framing::Empty, "a HEAD answer has no body");
                }
                if head.framing == Framing::Chunked {
                    let rest = buf.to_vec();
                    assert_eq!(dechunk(&rest, rest.len()), dechunk(&rest, 1));
                }
                scratch.recycle(head.headers);
            }
            Ok(None) => {
                assert_eq!(buf.len(), data.len(), "a partial head took bytes");
                assert!(matches!(fresh, Ok(None)), "reused memory changed the parse");
            }
            Err(what) => assert_eq!(fresh.err(), Some(what), "reused memory changed the parse"),
        }
    }
    let whole = dechunk(data, data.len());
    assert_eq!(whole, dechunk(data, 1), "the split changed the decoding");
    if let Ok((body, _)) = &whole {
        assert!(body.len() <= data.len());
    }
});

/// Decodes `input` as a chunked body fed `step` bytes at a time: the body and whether it was
/// complete, or the error.
fn dechunk(input: &[u8], step: usize) -> Result<(Vec<u8>, bool), &'static str> {
    let step = step.max(1);
    let mut state = Chunked::Size;
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut fed = 0;
    loop {
        match state.decode(&mut buf)? {
            Decoded::Data(data) => {
                assert!(!data.is_empty(), "an empty data frame");
                body.extend_from_slice(&data);
            }
            Decoded::End => return Ok((body, true)),
            Decoded::NeedMore if fed == input.len() => return Ok((body, false)),
            Decoded::NeedMore => {
                let end = (fed + step).min(input.len());
                buf.extend_from_slice(&input[fed..end]);
                fed = end;
            }
        }
    }
}
