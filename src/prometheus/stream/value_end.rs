//! Where one JSON value that chunks cut ends, found over each chunk once: the carried series of
//! [`super::Stream`] is read once it is whole, not again per chunk.

/// Follows one JSON value given piece by piece, from its first byte, to find where it ends:
/// strings, escapes and nesting only; serde_json validates the value once it is whole.
#[derive(Default)]
pub struct ValueEnd {
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// Past the first byte: a delimiter now ends a scalar.
    started: bool,
}

impl ValueEnd {
    /// The offset just past the value's end in `bytes`, or `None` if it goes on after them.
    /// Never `Some(0)`: the first byte is the value's.
    pub fn find(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < bytes.len() {
            if self.in_string {
                if std::mem::take(&mut self.escaped) {
                    i += 1;
                    continue;
                }
                // Most of a series is strings: skip to the next byte that matters in one.
                let at = i + bytes[i..].iter().position(|&b| b == b'"' || b == b'\\')?;
                if bytes[at] == b'\\' {
                    self.escaped = true;
                } else {
                    self.in_string = false;
                    if self.depth == 0 {
                        return Some(at + 1);
                    }
                }
                i = at + 1;
                continue;
            }
            let started = std::mem::replace(&mut self.started, true);
            match bytes[i] {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' if self.depth > 0 => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        return Some(i + 1);
                    }
                }
                b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r' if self.depth == 0 && started => {
                    return Some(i)
                }
                _ => {}
            }
            i += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where `value` ends, fed in pieces of `size`, as an offset into it.
    fn end(value: &[u8], size: usize) -> Option<usize> {
        let mut scanner = ValueEnd::default();
        let mut at = 0;
        for piece in value.chunks(size) {
            if let Some(end) = scanner.find(piece) {
                return Some(at + end);
            }
            at += piece.len();
        }
        None
    }

    #[test]
    fn a_value_ends_where_json_says_in_pieces_of_any_size() {
        for (value, want) in [
            (r#"{"a":["]",{"b":"}\"\\"}],"c":1} ,"#, Some(31)),
            (r#""a\"]" ]"#, Some(6)),
            ("123,", Some(3)),
            ("true ]", Some(4)),
            (",", None),
            (r#"{"a":"\"}"#, None),
            ("[[]", None),
        ] {
            for size in 1..=value.len() {
                assert_eq!(
                    end(value.as_bytes(), size),
                    want,
                    "{value} in pieces of {size}"
                );
            }
        }
    }
}
