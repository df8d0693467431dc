//! The RESP request parser on arbitrary input, fed whole and split at fuzzer-chosen points: it never panics,
//! and splitting never changes what it parses (commands and errors alike).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use synap_resp::{Limits, Parser};

const LIMITS: Limits = Limits { max_args: 64, max_bulk: 4096, max_inline: 256 };

fn run(chunks: &[&[u8]]) -> (Vec<Vec<bytes::Bytes>>, Option<String>) {
    let mut p = Parser::new(LIMITS);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match p.parse(&mut buf) {
                Ok(Some(cmd)) => out.push(cmd),
                Ok(None) => break,
                Err(e) => return (out, Some(e.to_string())),
            }
        }
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    // The first two bytes choose split points; the rest is the input.
    let (a, b) = (data[0] as usize, data[1] as usize);
    let input = &data[2..];
    let whole = run(&[input]);
    let i = a.min(input.len());
    let j = (i + b).min(input.len());
    let split = run(&[&input[..i], &input[i..j], &input[j..]]);
    assert_eq!(whole, split, "splitting changed the result");
    let bytewise: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(whole, run(&bytewise));
});
