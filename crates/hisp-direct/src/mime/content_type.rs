//! Content-Type values (RFC 2045 §5.1) with parameters, quoted strings, comments and
//! RFC 2231 continuations/charsets. Names compare case-insensitively (`micalg=SHA1` from
//! the .NET RI and `micalg=sha-256` mean the same parameter).

/// A parsed media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentType {
    /// `type/subtype`, lower-cased.
    pub mime: String,
    /// Parameters: names lower-cased, values as written (unquoted).
    pub params: Vec<(String, String)>,
}

impl ContentType {
    /// RFC 2045 §5.2 default.
    pub fn default_text() -> ContentType {
        ContentType {
            mime: "text/plain".into(),
            params: vec![("charset".into(), "us-ascii".into())],
        }
    }

    /// Parse a Content-Type field value. Never fails: garbage gives an odd type that no
    /// caller will accept, which is the right outcome.
    pub fn parse(value: &str) -> ContentType {
        let tokens = tokenize(value);
        let mut parts = tokens.split(|t| *t == Tok::Semi);
        let mime = joined(parts.next().unwrap_or(&[])).to_ascii_lowercase();
        let mut raw: Vec<(String, String)> = Vec::new();
        for p in parts {
            if let [Tok::Word(name), Tok::Eq, rest @ ..] = p {
                raw.push((name.to_ascii_lowercase(), joined(rest)));
            }
        }
        ContentType {
            mime,
            params: merge_rfc2231(raw),
        }
    }

    /// The value of a parameter, by case-insensitive name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// True when the media type is `mime` (case-insensitive).
    pub fn is(&self, mime: &str) -> bool {
        self.mime.eq_ignore_ascii_case(mime)
    }

    /// True for any `multipart/*`.
    pub fn is_multipart(&self) -> bool {
        self.mime.starts_with("multipart/")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok<'a> {
    Word(&'a str),
    Quoted(String),
    Eq,
    Semi,
}

/// The text of tokens between two semicolons, run together.
fn joined(tokens: &[Tok<'_>]) -> String {
    tokens
        .iter()
        .map(|t| match t {
            Tok::Word(w) => w,
            Tok::Quoted(w) => w.as_str(),
            Tok::Eq => "=",
            // Not within a part: the parts are split at semicolons.
            Tok::Semi => "",
        })
        .collect()
}

/// Split a field value into tokens; a word is taken as one slice of the value rather than
/// a character at a time (this runs for every MIME entity of every message).
fn tokenize<'a>(s: &'a str) -> Vec<Tok<'a>> {
    let mut out = Vec::with_capacity(16);
    let mut chars = s.char_indices().peekable();
    let mut word: Option<usize> = None;
    let flush = |word: &mut Option<usize>, end: usize, out: &mut Vec<Tok<'a>>| {
        if let Some(start) = word.take() {
            out.push(Tok::Word(&s[start..end]));
        }
    };
    while let Some((at, c)) = chars.next() {
        match c {
            ';' | '=' | '"' | '(' => {
                flush(&mut word, at, &mut out);
                match c {
                    ';' => out.push(Tok::Semi),
                    '=' => out.push(Tok::Eq),
                    '"' => out.push(Tok::Quoted(super::lex::quoted(
                        &mut chars.by_ref().map(|(_, c)| c),
                    ))),
                    _ => super::lex::skip_comment(&mut chars.by_ref().map(|(_, c)| c)),
                }
            }
            c if c.is_whitespace() => flush(&mut word, at, &mut out),
            _ => {
                word.get_or_insert(at);
            }
        }
    }
    flush(&mut word, s.len(), &mut out);
    out
}

/// Join `name*0*=`, `name*1=` … and decode `name*=charset'lang'%xx` (RFC 2231 §3, §4).
fn merge_rfc2231(raw: Vec<(String, String)>) -> Vec<(String, String)> {
    if !raw.iter().any(|(name, _)| name.contains('*')) {
        return raw; // the usual case: nothing to join or decode
    }
    let mut out: Vec<(String, String)> = Vec::new();
    let mut pieces: Vec<(String, u32, String)> = Vec::new();
    for (name, value) in raw {
        let (base, extended) = match name.strip_suffix('*') {
            Some(b) => (b.to_string(), true),
            None => (name.clone(), false),
        };
        let value = if extended {
            percent_decode(&value)
        } else {
            value
        };
        match base
            .rsplit_once('*')
            .and_then(|(b, n)| n.parse::<u32>().ok().map(|n| (b, n)))
        {
            Some((b, n)) => pieces.push((b.to_string(), n, value)),
            None => out.push((base, value)),
        }
    }
    pieces.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    for (name, _, value) in pieces {
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.push_str(&value),
            None => out.push((name, value)),
        }
    }
    out
}

fn percent_decode(v: &str) -> String {
    // charset'language'value: only the value part is kept; UTF-8 and ASCII are what mail uses.
    let v = match v.splitn(3, '\'').collect::<Vec<_>>().as_slice() {
        [_, _, rest] => rest.to_string(),
        _ => v.to_string(),
    };
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = hex_byte(bytes[i + 1], bytes[i + 2]) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_byte(h: u8, l: u8) -> Option<u8> {
    let d = |c: u8| (c as char).to_digit(16);
    Some((d(h)? * 16 + d(l)?) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2045_5_1_parameters_and_quoting() {
        let ct = ContentType::parse(
            "Multipart/Signed; protocol=\"application/pkcs7-signature\"; micalg=SHA1; boundary=\"----=_NextPart_000_0000_01CB023B.F9F5B3B0\"",
        );
        assert!(ct.is("multipart/signed"));
        assert_eq!(ct.param("MICALG"), Some("SHA1"));
        assert_eq!(
            ct.param("boundary"),
            Some("----=_NextPart_000_0000_01CB023B.F9F5B3B0")
        );
        assert_eq!(ct.param("protocol"), Some("application/pkcs7-signature"));
    }

    #[test]
    fn comments_and_missing_spaces() {
        let ct = ContentType::parse(
            "application/pkcs7-mime(c);smime-type=enveloped-data;name=smime.p7m",
        );
        assert!(ct.is("application/pkcs7-mime"));
        assert_eq!(ct.param("smime-type"), Some("enveloped-data"));
        assert_eq!(ct.param("name"), Some("smime.p7m"));
    }

    #[test]
    fn rfc2231_3_continuations_and_charset() {
        let ct =
            ContentType::parse("text/plain; name*0=\"a\"; name*1=\"b\"; title*=utf-8''%41%42c");
        assert_eq!(ct.param("name"), Some("ab"));
        assert_eq!(ct.param("title"), Some("ABc"));
    }
}
