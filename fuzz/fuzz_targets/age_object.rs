#![no_main]
// See uxwal::fuzzing::age_object (src/fuzzing.rs) for what the bytes are and what is asserted.
libfuzzer_sys::fuzz_target!(|data: &[u8]| uxwal::fuzzing::age_object(data));
