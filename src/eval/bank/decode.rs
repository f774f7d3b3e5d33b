//! Bank file bytes into text, line by line, so that undecodable text is reported by line.

use super::Encoding;

/// The decoded text (undecodable bytes replaced by U+FFFD, a UTF-8 byte-order mark dropped) and
/// the 1-based numbers of the lines that were not valid in `enc`.
pub fn decode(bytes: &[u8], enc: Encoding) -> (String, Vec<u64>) {
    let bytes = match enc {
        Encoding::Utf8 => bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes),
        Encoding::Gbk => bytes,
    };
    let codec = match enc {
        Encoding::Utf8 => encoding_rs::UTF_8,
        Encoding::Gbk => encoding_rs::GBK,
    };
    let mut text = String::with_capacity(bytes.len());
    let mut bad = Vec::new();
    // 0x0A is never part of a multi-byte character in UTF-8 or GBK.
    for (i, line) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
        match codec.decode_without_bom_handling_and_without_replacement(line) {
            Some(s) => text.push_str(&s),
            None => {
                bad.push(i as u64 + 1);
                text.push_str(&codec.decode_without_bom_handling(line).0);
            }
        }
    }
    (text, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gbk_and_bad_lines() {
        let (gbk, _, _) = encoding_rs::GBK.encode("题目,答案\n质量,B\n");
        assert_eq!(decode(&gbk, Encoding::Gbk), ("题目,答案\n质量,B\n".to_string(), vec![]));
        let mut bytes = b"a\n".to_vec();
        bytes.extend_from_slice(&gbk);
        assert_eq!(decode(&bytes, Encoding::Utf8).1, vec![2, 3]);
        assert_eq!(decode(b"\xef\xbb\xbfok\n\xff\n", Encoding::Utf8), ("ok\n\u{fffd}\n".to_string(), vec![2]));
    }
}
