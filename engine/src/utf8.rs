//! Incremental UTF-8 decoding of token pieces.
//!
//! A token's bytes need not be valid UTF-8 on their own: byte-level tokenizers split multi-byte
//! characters (emoji, CJK) across tokens. Decoding each piece separately would turn those into
//! replacement characters, so pieces are accumulated here and only complete characters are
//! emitted; bytes that can never become valid are replaced with U+FFFD rather than failing.

/// Accumulates token bytes and yields the text that is complete so far.
#[derive(Debug, Default)]
pub(crate) struct Utf8Stream {
    pending: Vec<u8>,
    text: String,
}

impl Utf8Stream {
    /// Appends one token's bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(s) => {
                    self.text.push_str(s);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = start + e.valid_up_to();
                    // `valid_up_to` guarantees this prefix is valid; the lossy call cannot alter it.
                    self.text
                        .push_str(&String::from_utf8_lossy(&self.pending[start..valid]));
                    match e.error_len() {
                        // Invalid bytes: replace them and keep going.
                        Some(n) => {
                            self.text.push(char::REPLACEMENT_CHARACTER);
                            start = valid + n;
                        }
                        // An incomplete character at the end: wait for the next token.
                        None => {
                            start = valid;
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..start);
    }

    /// The complete text so far.
    #[cfg(test)]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Ends the stream; an unfinished character at the end becomes U+FFFD.
    pub fn finish(mut self) -> String {
        if !self.pending.is_empty() {
            self.text.push_str(&String::from_utf8_lossy(&self.pending));
        }
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn multibyte_split_across_tokens() {
        let bytes = "a😀é".as_bytes();
        let mut s = Utf8Stream::default();
        s.push(&bytes[..3]); // "a" + half the emoji
        assert_eq!(s.text(), "a");
        s.push(&bytes[3..6]); // rest of the emoji + first byte of é
        assert_eq!(s.text(), "a😀");
        s.push(&bytes[6..]);
        assert_eq!(s.finish(), "a😀é");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut s = Utf8Stream::default();
        s.push(b"x\xffy");
        assert_eq!(s.text(), "x\u{fffd}y");
        s.push(b"\xe2\x82"); // truncated euro sign at the very end
        assert_eq!(s.finish(), "x\u{fffd}y\u{fffd}");
    }

    proptest! {
        #[test]
        fn any_split_of_valid_text_round_trips(text in "\\PC{0,40}", cuts in proptest::collection::vec(0usize..200, 0..8)) {
            let bytes = text.as_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut s = Utf8Stream::default();
            let mut prev = 0;
            for c in cuts.into_iter().chain([bytes.len()]) {
                s.push(&bytes[prev..c]);
                prev = c;
            }
            prop_assert_eq!(s.finish(), text);
        }

        #[test]
        fn arbitrary_bytes_match_lossy_decoding(bytes in proptest::collection::vec(any::<u8>(), 0..64), cut in 0usize..64) {
            let cut = cut.min(bytes.len());
            let mut s = Utf8Stream::default();
            s.push(&bytes[..cut]);
            s.push(&bytes[cut..]);
            prop_assert_eq!(s.finish(), String::from_utf8_lossy(&bytes).into_owned());
        }
    }
}
