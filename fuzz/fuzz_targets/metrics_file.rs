#![no_main]
// See uxwal::fuzzing::metrics_file (src/fuzzing.rs) for what the bytes are and what is asserted.
libfuzzer_sys::fuzz_target!(|data: &[u8]| uxwal::fuzzing::metrics_file(data));
