//! A small bounded JSON reader for the LUKS2 metadata area.
//!
//! The JSON area comes from a disk anyone may have written, so the reader caps what it
//! builds: the nesting depth, the number of values, and (implicitly) the input size,
//! which the caller bounds to the header area (at most 4 MiB). Numbers are kept as
//! their text and converted where a field is read; duplicate member names are an error
//! rather than "last one wins", so two readers can never see different metadata.

/// Deepest nesting the LUKS2 metadata needs is 4 (`keyslots` → slot → `kdf` → field);
/// tokens may carry their own objects, so allow some room, but no stack bomb.
pub const MAX_DEPTH: usize = 32;
/// Values in one document. A full LUKS2 header (32 key slots, tokens, segments,
/// digests) has a few thousand.
pub const MAX_VALUES: usize = 100_000;
/// Members of one object. LUKS2 objects hold at most 32 entries (key slots, tokens,
/// segments); the cap also keeps the duplicate-name check (linear per member) cheap.
pub const MAX_MEMBERS: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Bool(bool),
    /// The number's text as written (validated JSON number syntax).
    Number(String),
    String(String),
    Array(Vec<Value>),
    /// Members in document order; names are unique.
    Object(Vec<(String, Value)>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JsonError {
    #[error("JSON syntax error at byte {offset}: {what}")]
    Syntax { offset: usize, what: &'static str },
    #[error("JSON nested deeper than {MAX_DEPTH} levels at byte {offset}")]
    TooDeep { offset: usize },
    #[error("JSON has more than {MAX_VALUES} values (at byte {offset})")]
    TooManyValues { offset: usize },
    #[error("JSON object has more than {MAX_MEMBERS} members (at byte {offset})")]
    TooManyMembers { offset: usize },
    #[error("JSON object has the member {name:?} twice (at byte {offset})")]
    DuplicateKey { name: String, offset: usize },
}

impl Value {
    /// The member `name` of an object.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// A non-negative integer written as a JSON number.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(n) => n.parse().ok(),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// Parse one JSON document; only whitespace may follow it.
pub fn parse(text: &[u8]) -> Result<Value, JsonError> {
    let mut p = Parser {
        s: text,
        pos: 0,
        values: 0,
    };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.pos != p.s.len() {
        return Err(p.err("trailing data after the document"));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    values: usize,
}

impl Parser<'_> {
    fn err(&self, what: &'static str) -> JsonError {
        JsonError::Syntax {
            offset: self.pos,
            what,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), JsonError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(JsonError::TooManyValues { offset: self.pos });
        }
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'n') => self.literal(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("expected a value")),
            None => Err(self.err("unexpected end of input")),
        }
    }

    fn literal(&mut self, word: &[u8], v: Value) -> Result<Value, JsonError> {
        if self.s[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(v)
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::TooDeep { offset: self.pos });
        }
        self.pos += 1;
        let mut members: Vec<(String, Value)> = Vec::new();
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.ws();
            let at = self.pos;
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a member name"));
            }
            let name = self.string()?;
            if members.len() == MAX_MEMBERS {
                return Err(JsonError::TooManyMembers { offset: at });
            }
            if members.iter().any(|(k, _)| *k == name) {
                return Err(JsonError::DuplicateKey { name, offset: at });
            }
            self.ws();
            self.expect(b':', "expected ':' after a member name")?;
            self.ws();
            let v = self.value(depth)?;
            members.push((name, v));
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.err("expected ',' or '}' in an object")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::TooDeep { offset: self.pos });
        }
        self.pos += 1;
        let mut items = Vec::new();
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth)?);
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.err("expected ',' or ']' in an array")),
            }
        }
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.err("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.err("invalid number fraction"));
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.err("invalid number exponent"));
            }
            self.digits();
        }
        // Only ASCII was accepted above.
        let text = String::from_utf8_lossy(&self.s[start..self.pos]).into_owned();
        Ok(Value::Number(text))
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(c @ b'0'..=b'9') => c - b'0',
                Some(c @ b'a'..=b'f') => c - b'a' + 10,
                Some(c @ b'A'..=b'F') => c - b'A' + 10,
                _ => return Err(self.err("invalid \\u escape")),
            };
            v = v * 16 + u32::from(d);
            self.pos += 1;
        }
        Ok(v)
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.pos += 1; // the opening quote
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err("unterminated string"));
            };
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return Err(self.err("unterminated escape"));
                    };
                    self.pos += 1;
                    let simple = match e {
                        b'"' => Some(b'"'),
                        b'\\' => Some(b'\\'),
                        b'/' => Some(b'/'),
                        b'b' => Some(8),
                        b'f' => Some(12),
                        b'n' => Some(b'\n'),
                        b'r' => Some(b'\r'),
                        b't' => Some(b'\t'),
                        b'u' => None,
                        _ => return Err(self.err("invalid escape")),
                    };
                    if let Some(b) = simple {
                        out.push(b);
                        continue;
                    }
                    let mut cp = self.hex4()?;
                    if (0xD800..0xDC00).contains(&cp) {
                        if !self.s[self.pos..].starts_with(b"\\u") {
                            return Err(self.err("lone surrogate in \\u escape"));
                        }
                        self.pos += 2;
                        let lo = self.hex4()?;
                        if !(0xDC00..0xE000).contains(&lo) {
                            return Err(self.err("invalid surrogate pair"));
                        }
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    }
                    let ch = char::from_u32(cp).ok_or_else(|| self.err("invalid \\u escape"))?;
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1f => return Err(self.err("control character in string")),
                _ => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.err("string is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_luks2_like_document() {
        let v = parse(br#" {"keyslots":{"0":{"type":"luks2","key_size":64,"x":[1,-2.5e3,true,null,"a\u00e9\n"]}}} "#)
            .unwrap();
        let slot = v.get("keyslots").unwrap().get("0").unwrap();
        assert_eq!(slot.get("type").unwrap().as_str(), Some("luks2"));
        assert_eq!(slot.get("key_size").unwrap().as_u64(), Some(64));
        let x = slot.get("x").unwrap().as_array().unwrap();
        assert_eq!(x[1], Value::Number("-2.5e3".into()));
        assert_eq!(x[1].as_u64(), None);
        assert_eq!(x[4].as_str(), Some("a\u{e9}\n"));
    }

    #[test]
    fn surrogate_pairs_decode() {
        assert_eq!(
            parse(br#""\ud83d\ude00""#).unwrap().as_str(),
            Some("\u{1F600}")
        );
        assert!(parse(br#""\ud83d""#).is_err());
    }

    #[test]
    fn depth_bomb_is_rejected() {
        let bomb: Vec<u8> = std::iter::repeat_n(b'[', 100_000).collect();
        assert!(matches!(parse(&bomb), Err(JsonError::TooDeep { .. })));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(ok.as_bytes()).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(matches!(
            parse(deep.as_bytes()),
            Err(JsonError::TooDeep { .. })
        ));
    }

    #[test]
    fn value_count_bomb_is_rejected() {
        let mut s = String::from("[");
        for _ in 0..MAX_VALUES + 1 {
            s.push_str("0,");
        }
        s.push_str("0]");
        assert!(matches!(
            parse(s.as_bytes()),
            Err(JsonError::TooManyValues { .. })
        ));
    }

    /// A wide object would make the duplicate check quadratic.
    #[test]
    fn wide_object_is_rejected() {
        let members: Vec<String> = (0..=MAX_MEMBERS).map(|i| format!("\"k{i}\":0")).collect();
        let wide = format!("{{{}}}", members.join(","));
        assert!(matches!(
            parse(wide.as_bytes()),
            Err(JsonError::TooManyMembers { .. })
        ));
        let ok = format!("{{{}}}", members[..MAX_MEMBERS].join(","));
        assert!(parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn duplicate_member_is_rejected() {
        assert_eq!(
            parse(br#"{"a":1,"a":2}"#),
            Err(JsonError::DuplicateKey {
                name: "a".into(),
                offset: 7
            })
        );
    }

    #[test]
    fn malformed_documents_are_errors() {
        for bad in [
            &b""[..],
            b"{",
            b"{\"a\"}",
            b"[1,]",
            b"01",
            b"1.",
            b"\"abc",
            b"\"a\x01\"",
            b"tru",
            b"{} x",
            b"\"\\x\"",
            b"-",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
