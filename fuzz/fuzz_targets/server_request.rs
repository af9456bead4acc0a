#![no_main]
libfuzzer_sys::fuzz_target!(init: ragtune_fuzz::init(), |data: &[u8]| ragtune_fuzz::run("server_request", data));
