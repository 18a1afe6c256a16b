#![no_main]
//! See `crossgate::fuzz_targets::signature_headers` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| crossgate::fuzz_targets::signature_headers(data));
