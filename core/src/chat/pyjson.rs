//! The `tojson` filter as Hugging Face defines it for chat templates: Python's `json.dumps`
//! (separators `", "` and `": "`, `ensure_ascii=False` by default, keys in insertion order, no
//! HTML escaping). minijinja's own `tojson` is compact and HTML-escapes `<>&'`, which would
//! change the prompt a model was trained on.

use std::fmt::Write;

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Error, ErrorKind, Value};

use super::limits::{MAX_INDENT, TOJSON_MAX_BYTES, TOJSON_MAX_DEPTH};

struct Style {
    indent: Option<usize>,
    ensure_ascii: bool,
    sort_keys: bool,
    item_sep: String,
    key_sep: String,
}

/// `value | tojson(indent=None, ensure_ascii=False, sort_keys=False, separators=None)`.
pub(crate) fn tojson(value: &Value, indent: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let indent = match indent {
        Some(v) => Some(v),
        None => kwargs.get::<Option<Value>>("indent")?,
    };
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() || v.is_undefined() => None,
        Some(v) => Some(
            usize::try_from(v.clone())
                .ok()
                .filter(|&n| n <= MAX_INDENT)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidOperation,
                        format!("tojson: indent must be none or 0 to {MAX_INDENT}, got {v}"),
                    )
                })?,
        ),
    };
    let ensure_ascii = kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false);
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
    let separators = kwargs.get::<Option<Value>>("separators")?;
    kwargs.assert_all_used()?;
    let (mut item_sep, mut key_sep) = match indent {
        None => (", ".to_string(), ": ".to_string()),
        Some(_) => (",".to_string(), ": ".to_string()),
    };
    if let Some(seps) = separators.filter(|s| !s.is_none()) {
        let pair: Vec<Value> = seps.try_iter()?.collect();
        match pair.as_slice() {
            [a, b] if a.as_str().is_some() && b.as_str().is_some() => {
                item_sep = a.as_str().unwrap_or_default().to_string();
                key_sep = b.as_str().unwrap_or_default().to_string();
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson: separators must be a pair of strings, e.g. (', ', ': ')",
                ))
            }
        }
    }
    let style = Style {
        indent,
        ensure_ascii,
        sort_keys,
        item_sep,
        key_sep,
    };
    let mut out = String::new();
    write_value(&mut out, value, &style, 0)?;
    Ok(Value::from_safe_string(out))
}

fn write_value(out: &mut String, v: &Value, style: &Style, level: usize) -> Result<(), Error> {
    if level > TOJSON_MAX_DEPTH {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("tojson: the value nests deeper than {TOJSON_MAX_DEPTH} levels"),
        ));
    }
    if out.len() > TOJSON_MAX_BYTES {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("tojson: the JSON is longer than {TOJSON_MAX_BYTES} bytes"),
        ));
    }
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if v.is_integer() {
                out.push_str(&v.to_string());
            } else {
                let f = f64::try_from(v.clone())?;
                out.push_str(&python_float(f));
            }
        }
        ValueKind::String => write_str(out, v.as_str().unwrap_or_default(), style.ensure_ascii),
        ValueKind::Bytes => write_str(
            out,
            &String::from_utf8_lossy(v.as_bytes().unwrap_or_default()),
            style.ensure_ascii,
        ),
        ValueKind::Seq | ValueKind::Iterable => {
            // Written as iterated, never collected: `[x] * 10**9` is a lazy sequence whose
            // length alone says nothing; the byte cap stops it.
            write_container(out, '[', ']', v.try_iter()?, style, level, |out, item| {
                write_value(out, &item, style, level + 1)
            })?;
        }
        ValueKind::Map => {
            let mut entries: Vec<(String, Value)> = Vec::new();
            for key in v.try_iter()? {
                let item = v.get_item(&key)?;
                let key = match key.as_str() {
                    Some(s) => s.to_string(),
                    None => key.to_string(),
                };
                entries.push((key, item));
            }
            if style.sort_keys {
                entries.sort_by(|a, b| a.0.cmp(&b.0));
            }
            write_container(out, '{', '}', entries, style, level, |out, (key, item)| {
                write_str(out, &key, style.ensure_ascii);
                out.push_str(&style.key_sep);
                write_value(out, &item, style, level + 1)
            })?;
        }
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("tojson: cannot serialize {} ({})", v, v.kind()),
            ))
        }
    }
    Ok(())
}

fn write_container<T>(
    out: &mut String,
    open: char,
    close: char,
    items: impl IntoIterator<Item = T>,
    style: &Style,
    level: usize,
    mut write_item: impl FnMut(&mut String, T) -> Result<(), Error>,
) -> Result<(), Error> {
    out.push(open);
    let mut items = items.into_iter().peekable();
    if items.peek().is_none() {
        out.push(close);
        return Ok(());
    }
    let newline = |out: &mut String, level: usize| {
        if let Some(n) = style.indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * level));
        }
    };
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push_str(&style.item_sep);
        }
        newline(out, level + 1);
        write_item(out, item)?;
    }
    newline(out, level);
    out.push(close);
    Ok(())
}

fn write_str(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ensure_ascii && !c.is_ascii()) => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: shortest round-trip digits, `1.0` not `1`, exponent form outside
/// [1e-4, 1e16) written as `1e-07` / `1e+16`.
fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    // Rust's Debug already switches to exponent form at the same thresholds as Python.
    let s = format!("{f:?}");
    match s.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::python_float;

    #[test]
    fn floats_like_python() {
        assert_eq!(python_float(1.0), "1.0");
        assert_eq!(python_float(0.1), "0.1");
        assert_eq!(python_float(-2.5), "-2.5");
        assert_eq!(python_float(1e-7), "1e-07");
        assert_eq!(python_float(1.5e-7), "1.5e-07");
        assert_eq!(python_float(1e16), "1e+16");
        assert_eq!(python_float(123456.789), "123456.789");
        assert_eq!(python_float(0.0001), "0.0001");
        assert_eq!(python_float(f64::INFINITY), "Infinity");
    }
}
