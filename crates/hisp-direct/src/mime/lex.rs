//! The two lexical pieces RFC 5322 §3.2 shares across structured fields: quoted strings
//! and (nested) comments. Callers have consumed the opening `"` or `(`.

/// Read a quoted string's content up to the closing quote, undoing quoted-pairs.
pub(crate) fn quoted(chars: &mut impl Iterator<Item = char>) -> String {
    let mut q = String::new();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => q.extend(chars.next()),
            c => q.push(c),
        }
    }
    q
}

/// Skip a comment, nested comments and quoted-pairs included.
pub(crate) fn skip_comment(chars: &mut impl Iterator<Item = char>) {
    let mut depth = 1;
    while let Some(c) = chars.next() {
        match c {
            '(' => depth += 1,
            ')' if depth == 1 => return,
            ')' => depth -= 1,
            '\\' => {
                chars.next();
            }
            _ => {}
        }
    }
}
