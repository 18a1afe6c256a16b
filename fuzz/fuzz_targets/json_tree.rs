#![no_main]
//! See `crossgate::fuzz_targets::json_tree` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| crossgate::fuzz_targets::json_tree(data));
