#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| uml_fuzz::hf_config(data));
