//! Python's `str` whitespace and case rules.

/// Python's `str.isspace()` for one character (CPython `_PyUnicode_IsWhitespace`). The set is
/// Rust's `char::is_whitespace` plus U+001C..U+001F (file/group/record/unit separators); listed
/// explicitly so it does not drift with Rust's Unicode tables.
pub fn is_space(c: char) -> bool {
    matches!(
        c,
        '\u{09}'..='\u{0D}'
            | '\u{1C}'..='\u{1F}'
            | '\u{20}'
            | '\u{85}'
            | '\u{A0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200A}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202F}'
            | '\u{205F}'
            | '\u{3000}'
    )
}

/// The byte index where `s.rstrip()` ends: `&s[..rstrip_len(s)] == s.rstrip()`.
pub fn rstrip_len(s: &str) -> usize {
    s.char_indices().rev().find(|&(_, c)| !is_space(c)).map_or(0, |(i, c)| i + c.len_utf8())
}

/// `str.strip([chars])`: Python's whitespace, or any of `chars`.
pub fn strip<'a>(s: &'a str, chars: Option<&str>) -> &'a str {
    match chars {
        None => s.trim_matches(is_space),
        Some(cs) => s.trim_matches(|c| cs.contains(c)),
    }
}

/// `str.lstrip([chars])`.
pub fn lstrip<'a>(s: &'a str, chars: Option<&str>) -> &'a str {
    match chars {
        None => s.trim_start_matches(is_space),
        Some(cs) => s.trim_start_matches(|c| cs.contains(c)),
    }
}

/// `str.rstrip([chars])`.
pub fn rstrip<'a>(s: &'a str, chars: Option<&str>) -> &'a str {
    match chars {
        None => &s[..rstrip_len(s)],
        Some(cs) => s.trim_end_matches(|c| cs.contains(c)),
    }
}

/// `str.split()` with no separator: runs of whitespace split, empty parts dropped.
pub fn split_whitespace(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_space).filter(|p| !p.is_empty())
}

/// `str.capitalize()`: first character upper-cased, the rest lower-cased.
pub fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        None => String::new(),
        Some(f) => f.to_uppercase().chain(c.as_str().to_lowercase().chars()).collect(),
    }
}

/// `len(re.split(r"\s+", text))` (lm-eval's word count for word perplexity): whitespace runs + 1.
/// Python's `\s` on str patterns is `str.isspace`.
pub fn count_words(text: &str) -> usize {
    let mut n = 1;
    let mut in_ws = false;
    for c in text.chars() {
        let w = is_space(c);
        if w && !in_ws {
            n += 1;
        }
        in_ws = w;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rstrip_like_python() {
        assert_eq!(rstrip_len("Hello\x1c"), 5);
        assert_eq!(rstrip_len("a\u{3000} \x1f"), 1);
        assert_eq!(rstrip_len("问\u{3000}"), "问".len());
        assert_eq!(rstrip_len("  \t\n"), 0);
        assert_eq!(rstrip_len(""), 0);
        assert_eq!(rstrip_len("abc"), 3);
        // U+200B (zero width space) and U+FEFF are not whitespace in Python.
        assert_eq!(rstrip_len("a\u{200B}"), "a\u{200B}".len());
        assert_eq!(rstrip_len("a\u{FEFF}"), "a\u{FEFF}".len());
        assert_eq!(rstrip(" a \x1c", None), " a");
        assert_eq!(lstrip("xxa", Some("x")), "a");
        assert_eq!(strip("  hi \u{1c}", None), "hi");
    }

    #[test]
    fn is_space_matches_cpython_table() {
        // Output of `[hex(c) for c in range(0x110000) if chr(c).isspace()]` on CPython 3.11.
        let expected: [u32; 29] = [
            0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000,
            0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028,
            0x2029, 0x202f, 0x205f, 0x3000,
        ];
        let got: Vec<u32> = (0..=0x10FFFFu32).filter_map(char::from_u32).filter(|&c| is_space(c)).map(u32::from).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn words_and_case() {
        assert_eq!(count_words(" a  b\n"), 4);
        assert_eq!(count_words("a b"), 2);
        assert_eq!(count_words("a b\n c"), 3);
        assert_eq!(capitalize("the MAN"), "The man");
        assert_eq!(split_whitespace(" a \u{3000}b ").collect::<Vec<_>>(), ["a", "b"]);
    }
}
