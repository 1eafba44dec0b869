#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cryptbak_fuzz::restore_tar(data));
