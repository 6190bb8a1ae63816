//! See `gateway_auth_guest::fuzzing::session_record` for the input's shape and what must hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gateway_auth_guest::fuzzing::session_record(data));
