//! A small JSON reader and writer, enough for iperf3's parameter and result objects.
//!
//! Everything parsed here comes from a peer on the network, so the parser never panics, never
//! recurses deeper than [`MAX_DEPTH`], refuses number literals longer than [`MAX_NUMBER_LEN`]
//! and values that do not fit a finite `f64`, checks every escape (including UTF-16 surrogate
//! pairs) and refuses raw control characters and trailing garbage. The caller bounds the input
//! length (the framing in [`crate::proto`] refuses messages over
//! [`crate::proto::MAX_MESSAGE_LEN`] before reading them).
//!
//! The writer produces compact JSON (no spaces), as iperf3's `cJSON_PrintUnformatted` does.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

/// Deepest nesting of arrays and objects accepted (iperf3's messages nest three levels).
pub const MAX_DEPTH: usize = 32;
/// Longest number literal accepted, in bytes (a `%.17g` double needs 24).
pub const MAX_NUMBER_LEN: usize = 64;

/// A JSON number: always as an `f64`, and exactly when the literal was an integer that fits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Number {
    /// The literal as an integer, when it had no fraction or exponent and fits an `i64`.
    int: Option<i64>,
    /// The value as a double (always finite).
    float: f64,
}

impl Number {
    /// An integer.
    pub fn from_i64(v: i64) -> Self {
        Self {
            int: Some(v),
            float: v as f64,
        }
    }

    /// A double; non-finite values become 0 (JSON has no representation for them).
    pub fn from_f64(v: f64) -> Self {
        Self {
            int: None,
            float: if v.is_finite() { v } else { 0.0 },
        }
    }

    /// The value as a double.
    pub fn as_f64(&self) -> f64 {
        self.float
    }

    /// The value as an integer, when it is one: an integer literal, or a double with no fraction
    /// within ±2^53 (where doubles are exact).
    pub fn as_i64(&self) -> Option<i64> {
        if let Some(i) = self.int {
            return Some(i);
        }
        const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
        let f = self.float;
        if (-EXACT..=EXACT).contains(&f) && (f as i64) as f64 == f {
            Some(f as i64)
        } else {
            None
        }
    }

    /// The value as a non-negative integer, when it is one.
    pub fn as_u64(&self) -> Option<u64> {
        self.as_i64().and_then(|i| u64::try_from(i).ok())
    }
}

/// A JSON value. Objects keep their members in order, duplicates included; lookups take the first.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number.
    Number(Number),
    /// A string (unescaped).
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object, its members in the order they came.
    Object(Vec<(String, Value)>),
}

impl Value {
    /// An integer value.
    pub fn int(v: i64) -> Self {
        Value::Number(Number::from_i64(v))
    }

    /// A double value.
    pub fn float(v: f64) -> Self {
        Value::Number(Number::from_f64(v))
    }

    /// A string value.
    pub fn str(s: &str) -> Self {
        Value::String(String::from(s))
    }

    /// The member `key` of an object (the first, if repeated); `None` for a missing key or a
    /// value that is not an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The number, if this is one.
    pub fn as_number(&self) -> Option<&Number> {
        match self {
            Value::Number(n) => Some(n),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// Compact JSON text of this value.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = write_value(&mut out, self);
        out
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_value(f, self)
    }
}

/// Why a text is not acceptable JSON, and at which byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonError {
    /// What is wrong.
    pub kind: JsonErrorKind,
    /// Byte offset in the input where it was noticed.
    pub offset: usize,
}

/// The kinds of [`JsonError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonErrorKind {
    /// The input is not UTF-8.
    NotUtf8,
    /// The input ended inside a value.
    Truncated,
    /// A byte that cannot start or continue a value here.
    Unexpected,
    /// Arrays and objects nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// A malformed number, or one longer than [`MAX_NUMBER_LEN`].
    BadNumber,
    /// A number too large for a finite double.
    NumberOutOfRange,
    /// An unknown escape, a bad `\u` sequence or an unpaired surrogate.
    BadEscape,
    /// A raw control character (below 0x20) inside a string.
    ControlCharacter,
    /// Something other than whitespace after the value.
    TrailingData,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            JsonErrorKind::NotUtf8 => "not UTF-8",
            JsonErrorKind::Truncated => "truncated",
            JsonErrorKind::Unexpected => "unexpected character",
            JsonErrorKind::TooDeep => "nested too deeply",
            JsonErrorKind::BadNumber => "malformed number",
            JsonErrorKind::NumberOutOfRange => "number out of range",
            JsonErrorKind::BadEscape => "bad escape",
            JsonErrorKind::ControlCharacter => "control character in a string",
            JsonErrorKind::TrailingData => "data after the value",
        };
        write!(f, "JSON {what} at byte {}", self.offset)
    }
}

/// Parses one JSON value filling the whole input (whitespace around it allowed).
pub fn parse(input: &[u8]) -> Result<Value, JsonError> {
    if let Err(e) = core::str::from_utf8(input) {
        return Err(JsonError {
            kind: JsonErrorKind::NotUtf8,
            offset: e.valid_up_to(),
        });
    }
    let mut p = Parser { s: input, pos: 0 };
    p.skip_ws();
    let v = p.value(0)?;
    p.skip_ws();
    if p.pos != p.s.len() {
        return Err(p.err(JsonErrorKind::TrailingData));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, kind: JsonErrorKind) -> JsonError {
        JsonError {
            kind,
            offset: self.pos,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn next(&mut self) -> Result<u8, JsonError> {
        let b = self.peek().ok_or(self.err(JsonErrorKind::Truncated))?;
        self.pos += 1;
        Ok(b)
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &[u8], v: Value) -> Result<Value, JsonError> {
        for &w in word {
            let b = self.next()?;
            if b != w {
                self.pos -= 1;
                return Err(self.err(JsonErrorKind::Unexpected));
            }
        }
        Ok(v)
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        match self.peek() {
            None => Err(self.err(JsonErrorKind::Truncated)),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'n') => self.literal(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number().map(Value::Number),
            Some(_) => Err(self.err(JsonErrorKind::Unexpected)),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err(JsonErrorKind::TooDeep));
        }
        self.pos += 1; // '{'
        let mut members = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'"') => {}
                None => return Err(self.err(JsonErrorKind::Truncated)),
                Some(_) => return Err(self.err(JsonErrorKind::Unexpected)),
            }
            let key = self.string()?;
            self.skip_ws();
            match self.next()? {
                b':' => {}
                _ => {
                    self.pos -= 1;
                    return Err(self.err(JsonErrorKind::Unexpected));
                }
            }
            self.skip_ws();
            let v = self.value(depth)?;
            members.push((key, v));
            self.skip_ws();
            match self.next()? {
                b',' => continue,
                b'}' => return Ok(Value::Object(members)),
                _ => {
                    self.pos -= 1;
                    return Err(self.err(JsonErrorKind::Unexpected));
                }
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err(JsonErrorKind::TooDeep));
        }
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth)?);
            self.skip_ws();
            match self.next()? {
                b',' => continue,
                b']' => return Ok(Value::Array(items)),
                _ => {
                    self.pos -= 1;
                    return Err(self.err(JsonErrorKind::Unexpected));
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let b = self.next()?;
            let d = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                _ => {
                    self.pos -= 1;
                    return Err(self.err(JsonErrorKind::BadEscape));
                }
            };
            v = (v << 4) | u32::from(d);
        }
        Ok(v)
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.pos += 1; // '"'
        let mut out = String::new();
        loop {
            // Copy the run of plain characters at once (the input is valid UTF-8, and '"', '\\'
            // and control characters are ASCII, so the run ends on a character boundary).
            let start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            if self.pos > start {
                match core::str::from_utf8(&self.s[start..self.pos]) {
                    Ok(run) => out.push_str(run),
                    Err(_) => return Err(self.err(JsonErrorKind::NotUtf8)),
                }
            }
            match self.next()? {
                b'"' => return Ok(out),
                b'\\' => {}
                _ => {
                    self.pos -= 1;
                    return Err(self.err(JsonErrorKind::ControlCharacter));
                }
            }
            let c = match self.next()? {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => self.unicode_escape()?,
                _ => {
                    self.pos -= 1;
                    return Err(self.err(JsonErrorKind::BadEscape));
                }
            };
            out.push(c);
        }
    }

    /// After `\u`: four hex digits, and for a high surrogate a `\uDC00..DFFF` low one.
    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let hi = self.hex4()?;
        let code = match hi {
            0xd800..=0xdbff => {
                if self.next()? != b'\\' || self.next()? != b'u' {
                    self.pos -= 1;
                    return Err(self.err(JsonErrorKind::BadEscape));
                }
                let lo = self.hex4()?;
                if !(0xdc00..=0xdfff).contains(&lo) {
                    return Err(self.err(JsonErrorKind::BadEscape));
                }
                0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
            }
            0xdc00..=0xdfff => return Err(self.err(JsonErrorKind::BadEscape)),
            _ => hi,
        };
        char::from_u32(code).ok_or(self.err(JsonErrorKind::BadEscape))
    }

    fn number(&mut self) -> Result<Number, JsonError> {
        let start = self.pos;
        let bad = |p: &Self| {
            Err(JsonError {
                kind: JsonErrorKind::BadNumber,
                offset: p.pos,
            })
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        // Integer part: 0, or a non-zero digit followed by digits.
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                while let Some(b'0'..=b'9') = self.peek() {
                    self.pos += 1;
                }
            }
            None => return Err(self.err(JsonErrorKind::Truncated)),
            Some(_) => return bad(self),
        }
        let mut integral = true;
        if self.peek() == Some(b'.') {
            integral = false;
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return if self.peek().is_none() {
                    Err(self.err(JsonErrorKind::Truncated))
                } else {
                    bad(self)
                };
            }
            while let Some(b'0'..=b'9') = self.peek() {
                self.pos += 1;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            integral = false;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return if self.peek().is_none() {
                    Err(self.err(JsonErrorKind::Truncated))
                } else {
                    bad(self)
                };
            }
            while let Some(b'0'..=b'9') = self.peek() {
                self.pos += 1;
            }
        }
        if self.pos - start > MAX_NUMBER_LEN {
            return Err(JsonError {
                kind: JsonErrorKind::BadNumber,
                offset: start,
            });
        }
        // The literal is ASCII by construction.
        let text = core::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
        let float: f64 = match text.parse() {
            Ok(f) => f,
            Err(_) => return bad(self),
        };
        if !float.is_finite() {
            return Err(JsonError {
                kind: JsonErrorKind::NumberOutOfRange,
                offset: start,
            });
        }
        let int = if integral {
            text.parse::<i64>().ok()
        } else {
            None
        };
        Ok(Number { int, float })
    }
}

/// Writes `v` as compact JSON.
pub fn write_value(out: &mut impl Write, v: &Value) -> fmt::Result {
    match v {
        Value::Null => out.write_str("null"),
        Value::Bool(true) => out.write_str("true"),
        Value::Bool(false) => out.write_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.write_char('[')?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.write_char(',')?;
                }
                write_value(out, item)?;
            }
            out.write_char(']')
        }
        Value::Object(members) => {
            out.write_char('{')?;
            for (i, (k, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.write_char(',')?;
                }
                write_string(out, k)?;
                out.write_char(':')?;
                write_value(out, item)?;
            }
            out.write_char('}')
        }
    }
}

fn write_number(out: &mut impl Write, n: &Number) -> fmt::Result {
    if let Some(i) = n.int {
        return write!(out, "{i}");
    }
    let f = n.float;
    if !f.is_finite() {
        // Unreachable through the constructors; JSON has no NaN or infinity.
        return out.write_str("0");
    }
    // Rust's shortest round-trip form; exponent form for very large or very small magnitudes,
    // which plain notation would spell with hundreds of digits. Both are valid JSON.
    let a = f.abs();
    if a != 0.0 && !(1e-5..1e16).contains(&a) {
        write!(out, "{f:e}")
    } else {
        write!(out, "{f}")
    }
}

fn write_string(out: &mut impl Write, s: &str) -> fmt::Result {
    out.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            '\u{8}' => out.write_str("\\b")?,
            '\u{c}' => out.write_str("\\f")?,
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32)?,
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn err_kind(s: &[u8]) -> JsonErrorKind {
        match parse(s) {
            Ok(v) => panic!("{:?} parsed as {v:?}", String::from_utf8_lossy(s)),
            Err(e) => e.kind,
        }
    }

    #[test]
    fn parses_iperf3_params() {
        let text = br#"{"tcp":true,"omit":0,"time":10,"num":0,"blockcount":0,"parallel":2,"reverse":true,"len":131072,"pacing_timer":1000,"client_version":"3.12"}"#;
        let v = parse(text).expect("valid");
        assert_eq!(v.get("tcp"), Some(&Value::Bool(true)));
        assert_eq!(
            v.get("parallel")
                .and_then(Value::as_number)
                .and_then(Number::as_i64),
            Some(2)
        );
        assert_eq!(
            v.get("len")
                .and_then(Value::as_number)
                .and_then(Number::as_u64),
            Some(131072)
        );
        assert_eq!(
            v.get("client_version").and_then(Value::as_str),
            Some("3.12")
        );
        assert_eq!(v.get("udp"), None);
    }

    #[test]
    fn parses_nested_results_with_floats() {
        let text = br#" { "cpu_util_total" : 1.5e1, "x": -0.25, "streams": [ {"id":1,"bytes":12345678901,"jitter":0,"end_time":1.000043} ], "e": [], "o": {} } "#;
        let v = parse(text).expect("valid");
        let n = v
            .get("cpu_util_total")
            .and_then(Value::as_number)
            .expect("n");
        assert_eq!(n.as_f64(), 15.0);
        assert_eq!(n.as_i64(), Some(15));
        assert_eq!(
            v.get("x").and_then(Value::as_number).map(Number::as_f64),
            Some(-0.25)
        );
        let streams = v.get("streams").and_then(Value::as_array).expect("array");
        assert_eq!(
            streams[0]
                .get("bytes")
                .and_then(Value::as_number)
                .and_then(Number::as_u64),
            Some(12_345_678_901)
        );
        assert_eq!(
            streams[0]
                .get("end_time")
                .and_then(Value::as_number)
                .map(Number::as_f64),
            Some(1.000043)
        );
        assert_eq!(v.get("e"), Some(&Value::Array(vec![])));
        assert_eq!(v.get("o"), Some(&Value::Object(vec![])));
    }

    #[test]
    fn strings_and_escapes() {
        let text = r#""a\"b\\c\/d\b\f\n\r\t\u0041\u00e9\ud83d\ude00 é""#;
        let v = parse(text.as_bytes()).expect("valid");
        assert_eq!(v.as_str(), Some("a\"b\\c/d\u{8}\u{c}\n\r\tAé\u{1f600} é"));
    }

    #[test]
    fn bad_escapes_are_refused() {
        assert_eq!(err_kind(br#""\x""#), JsonErrorKind::BadEscape);
        assert_eq!(err_kind(br#""\u12""#), JsonErrorKind::BadEscape);
        assert_eq!(err_kind(br#""\u12g4""#), JsonErrorKind::BadEscape);
        // A lone high surrogate, a lone low one, a high one followed by a non-surrogate.
        assert_eq!(err_kind(br#""\ud800""#), JsonErrorKind::BadEscape);
        assert_eq!(err_kind(br#""\udc00""#), JsonErrorKind::BadEscape);
        assert_eq!(err_kind(br#""\ud800\u0041""#), JsonErrorKind::BadEscape);
        assert_eq!(err_kind(b"\"a\x01b\""), JsonErrorKind::ControlCharacter);
        assert_eq!(err_kind(b"\"a\nb\""), JsonErrorKind::ControlCharacter);
        assert_eq!(err_kind(b"\"\\"), JsonErrorKind::Truncated);
    }

    #[test]
    fn truncated_inputs_are_refused() {
        let full = br#"{"a":[1,2.5e3,{"b":"c"},true,false,null],"d":"e"}"#;
        assert!(parse(full).is_ok());
        for cut in 0..full.len() {
            let r = parse(&full[..cut]);
            assert!(r.is_err(), "prefix of {cut} bytes parsed: {r:?}");
        }
        assert_eq!(err_kind(b""), JsonErrorKind::Truncated);
        assert_eq!(err_kind(b"   "), JsonErrorKind::Truncated);
        assert_eq!(err_kind(b"tru"), JsonErrorKind::Truncated);
        assert_eq!(err_kind(b"[1,"), JsonErrorKind::Truncated);
        assert_eq!(err_kind(b"1."), JsonErrorKind::Truncated);
        assert_eq!(err_kind(b"1e"), JsonErrorKind::Truncated);
        assert_eq!(err_kind(b"-"), JsonErrorKind::Truncated);
    }

    #[test]
    fn deep_nesting_is_refused_without_recursing_far() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(ok.as_bytes()).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(err_kind(deep.as_bytes()), JsonErrorKind::TooDeep);
        // Far deeper than any stack would take if each level recursed unchecked.
        let hostile = "[{\"a\":".repeat(100_000);
        assert_eq!(err_kind(hostile.as_bytes()), JsonErrorKind::TooDeep);
        let objects = "{\"a\":".repeat(1_000_000);
        assert_eq!(err_kind(objects.as_bytes()), JsonErrorKind::TooDeep);
    }

    #[test]
    fn numbers() {
        let num = |s: &str| match parse(s.as_bytes()) {
            Ok(Value::Number(n)) => n,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(num("0").as_i64(), Some(0));
        assert_eq!(num("-0").as_f64(), 0.0);
        assert_eq!(num("9223372036854775807").as_i64(), Some(i64::MAX));
        // Too large for i64 but a fine double: no exact integer.
        assert_eq!(num("9223372036854775808").as_i64(), None);
        assert_eq!(num("1e3").as_i64(), Some(1000));
        assert_eq!(num("1E+3").as_u64(), Some(1000));
        assert_eq!(num("2.5E-3").as_f64(), 0.0025);
        assert_eq!(num("1.5").as_i64(), None);
        assert_eq!(num("-7").as_u64(), None);
        assert_eq!(num("1e300").as_i64(), None);
        assert_eq!(num("1.7976931348623157e308").as_f64(), f64::MAX);
        for bad in [
            "01", "1.", "1.e5", ".5", "+1", "1e", "1e+", "--1", "0x10", "1.5.5",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad} parsed");
        }
        assert_eq!(err_kind(b"1e400"), JsonErrorKind::NumberOutOfRange);
        assert_eq!(err_kind(b"-1e400"), JsonErrorKind::NumberOutOfRange);
        let huge = "9".repeat(10_000);
        assert_eq!(err_kind(huge.as_bytes()), JsonErrorKind::BadNumber);
        assert_eq!(err_kind(b"NaN"), JsonErrorKind::Unexpected);
        assert_eq!(err_kind(b"Infinity"), JsonErrorKind::Unexpected);
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(err_kind(b"{} x"), JsonErrorKind::TrailingData);
        assert_eq!(err_kind(b"{}{}"), JsonErrorKind::TrailingData);
        assert_eq!(err_kind(b"{a:1}"), JsonErrorKind::Unexpected);
        assert_eq!(err_kind(b"{\"a\" 1}"), JsonErrorKind::Unexpected);
        assert_eq!(err_kind(b"{\"a\":1,}"), JsonErrorKind::Unexpected);
        assert_eq!(err_kind(b"[1,]"), JsonErrorKind::Unexpected);
        assert_eq!(err_kind(b"[1 2]"), JsonErrorKind::Unexpected);
        assert_eq!(err_kind(b"trUe"), JsonErrorKind::Unexpected);
        assert_eq!(err_kind(b"\"\xff\""), JsonErrorKind::NotUtf8);
        assert_eq!(err_kind(b"\x00"), JsonErrorKind::Unexpected);
    }

    #[test]
    fn random_bytes_never_panic() {
        // A deterministic xorshift over short inputs drawn from JSON's alphabet and beyond.
        let alphabet = b"{}[]\":,0123456789-+.eE truefalsnul\\u\x00\xff\x7f";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut len = 0;
            let mut buf = [0u8; 24];
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (x % 24) as usize;
            while len < n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf[len] = alphabet[(x % alphabet.len() as u64) as usize];
                len += 1;
            }
            let _ = parse(&buf[..len]);
        }
    }

    #[test]
    fn encoder_round_trips() {
        let v = Value::Object(vec![
            ("tcp".into(), Value::Bool(true)),
            ("n".into(), Value::Null),
            ("i".into(), Value::int(-42)),
            ("big".into(), Value::int(i64::MAX)),
            ("f".into(), Value::float(1.000043)),
            ("tiny".into(), Value::float(1e-300)),
            ("huge".into(), Value::float(1e300)),
            ("nan".into(), Value::float(f64::NAN)),
            (
                "s".into(),
                Value::str("q\"b\\s/\n\r\t\u{1}\u{8}\u{c}é\u{1f600}"),
            ),
            (
                "a".into(),
                Value::Array(vec![
                    Value::int(1),
                    Value::Array(vec![]),
                    Value::Object(vec![]),
                ]),
            ),
        ]);
        let text = v.encode();
        assert!(!text.contains(' '), "{text}");
        assert!(
            text.starts_with(
                r#"{"tcp":true,"n":null,"i":-42,"big":9223372036854775807,"f":1.000043,"#
            ),
            "{text}"
        );
        let back = parse(text.as_bytes()).expect("round trip");
        assert_eq!(
            back.get("nan")
                .and_then(Value::as_number)
                .map(Number::as_f64),
            Some(0.0)
        );
        let mut expect = v.clone();
        if let Value::Object(m) = &mut expect {
            m[7].1 = Value::float(0.0);
        }
        // Doubles that happen to be integral come back as integers; compare their values.
        assert_eq!(back.get("s"), expect.get("s"));
        assert_eq!(back.get("a"), expect.get("a"));
        for k in ["f", "tiny", "huge", "i", "big"] {
            assert_eq!(
                back.get(k).and_then(Value::as_number).map(Number::as_f64),
                expect.get(k).and_then(Value::as_number).map(Number::as_f64),
                "{k}"
            );
        }
        assert_eq!(format!("{v}"), text);
    }
}
