//! The mutation-batch decoder (WAL records, snapshot chunks) on arbitrary bytes: it never panics, and what
//! it accepts re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use synap_core::{decode_batch, encode_batch};

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = decode_batch(data) {
        let mut again = Vec::new();
        encode_batch(&batch, &mut again);
        assert_eq!(again, data);
    }
});
