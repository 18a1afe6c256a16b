#![no_main]
//! See `crossgate::fuzz_targets::csv_groups` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| crossgate::fuzz_targets::csv_groups(data));
