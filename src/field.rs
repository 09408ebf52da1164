//! Fixed-width fields of byte strings read from outside (page headers,
//! trailers, spool entries): a field that is not all there is `None`, never a
//! panic.

// Parses data from outside: no indexing that could panic on it.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

/// The `N` bytes of `bytes` at offset `at`, if all of them are there.
pub(crate) fn array_at<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::array_at;

    #[test]
    fn a_field_past_the_end_is_none() {
        let b = [1u8, 2, 3, 4, 5];
        assert_eq!(array_at::<2>(&b, 3), Some([4, 5]));
        assert_eq!(array_at::<2>(&b, 4), None);
        assert_eq!(array_at::<1>(&b, usize::MAX), None);
        assert_eq!(array_at::<0>(&b, 5), Some([]));
    }
}
