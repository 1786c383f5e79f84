//! Fuzzes the reading of backends' HTTP/1.1 responses: arbitrary bytes as a response head
//! (for a GET and for a HEAD) and, after a chunked head or on their own, as a chunked body.
//! Neither parser may panic, take more bytes than it was given or give more body than it
//! read, and the chunked decoder must decode the same bytes the same way however they arrive:
//! all at once or one at a time.

#![no_main]

use bytes::BytesMut;
use http::Method;
use libfuzzer_sys::fuzz_target;
use meridian::balancer::upstream::{Chunked, Decoded, Framing, parse_head};

fuzz_target!(|data: &[u8]| {
    for method in [Method::GET, Method::HEAD] {
        let mut buf = BytesMut::from(data);
        match parse_head(&mut buf, &method) {
            Ok(Some(head)) => {
                assert!(buf.len() < data.len(), "a head took no bytes");
                if method == Method::HEAD {
                    assert_eq!(head.framing, Framing::Empty, "a HEAD answer has no body");
                }
                if head.framing == Framing::Chunked {
                    let rest = buf.to_vec();
                    assert_eq!(dechunk(&rest, rest.len()), dechunk(&rest, 1));
                }
            }
            Ok(None) => assert_eq!(buf.len(), data.len(), "a partial head took bytes"),
            Err(_) => {}
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
