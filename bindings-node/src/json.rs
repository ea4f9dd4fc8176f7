//! JavaScript values as JSON documents: the one place where a JS input
//! (restore point, request, catalog, rules, plan) becomes a
//! `serde_json::Value`.
//!
//! napi's own conversion refuses NaN and ±Infinity with "Failed to convert
//! js number" and no path, before the binding sees the input. `Json`
//! converts itself and keeps the error, with the JSON path of the bad
//! value, for the entry point to throw as `E_PARSE`.

use napi::bindgen_prelude::*;
use napi::sys;
use serde_json::Value;

type CoreError = restore_core::Error;

/// Nesting deeper than this is refused (cycles end here too).
const MAX_DEPTH: usize = 128;
/// Values (of all levels) beyond this are refused.
const MAX_NODES: usize = 1_000_000;

/// A JS value converted to JSON, or why it could not be (with its path).
pub struct Json(pub std::result::Result<Value, CoreError>);

impl Json {
    /// The value, or the conversion's `E_PARSE` error.
    pub fn value(self) -> restore_core::Result<Value> {
        self.0
    }
}

impl TypeName for Json {
    fn type_name() -> &'static str {
        "Json"
    }

    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl ValidateNapiValue for Json {}

impl FromNapiValue for Json {
    unsafe fn from_napi_value(env: sys::napi_env, napi_val: sys::napi_value) -> Result<Self> {
        let v = unsafe { Unknown::from_napi_value(env, napi_val)? };
        let mut nodes = MAX_NODES;
        let mut path = String::from("$");
        Ok(Json(convert(v, &mut path, 0, &mut nodes)))
    }
}

fn parse_error(path: &str, message: impl Into<String>) -> CoreError {
    CoreError::Parse {
        path: path.into(),
        message: message.into(),
    }
}

fn napi_error(path: &str, e: napi::Error) -> CoreError {
    parse_error(path, e.reason.clone())
}

/// JavaScript has one number type: napi hands every number beyond 32 bits
/// over as a float. Whole numbers that a double holds exactly become
/// integers again, so `137438953472` reaches a `u64` field as such.
fn number(f: f64, path: &str) -> std::result::Result<Value, CoreError> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if !f.is_finite() {
        return Err(parse_error(
            path,
            format!("not a finite number ({})", js(f)),
        ));
    }
    if f.fract() == 0.0 && f.abs() <= EXACT {
        return Ok(if f >= 0.0 {
            Value::from(f as u64)
        } else {
            Value::from(f as i64)
        });
    }
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| parse_error(path, format!("not a JSON number ({f})")))
}

/// A number as JavaScript prints it (`NaN`, `Infinity`, `-Infinity`).
fn js(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        f.to_string()
    }
}

/// `.name` for identifier-like keys, `["..."]` for the others.
fn push_key(path: &mut String, key: &str) {
    let ident = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '@');
    if ident {
        path.push('.');
        path.push_str(key);
    } else {
        path.push('[');
        path.push_str(&Value::from(key).to_string());
        path.push(']');
    }
}

fn convert(
    v: Unknown<'_>,
    path: &mut String,
    depth: usize,
    nodes: &mut usize,
) -> std::result::Result<Value, CoreError> {
    if *nodes == 0 {
        return Err(parse_error(
            path,
            format!("more than {MAX_NODES} values in one document"),
        ));
    }
    *nodes -= 1;
    let ty = v.get_type().map_err(|e| napi_error(path, e))?;
    let raw = |e| napi_error(path, e);
    match ty {
        ValueType::Null => Ok(Value::Null),
        ValueType::Boolean => Ok(Value::Bool(unsafe { v.cast::<bool>() }.map_err(raw)?)),
        ValueType::Number => number(unsafe { v.cast::<f64>() }.map_err(raw)?, path),
        ValueType::String => Ok(Value::String(unsafe { v.cast::<String>() }.map_err(raw)?)),
        ValueType::BigInt => {
            let b = unsafe { v.cast::<BigInt>() }.map_err(raw)?;
            let out = if b.sign_bit {
                let (n, lossless) = b.get_i64();
                lossless.then(|| Value::from(n))
            } else {
                let (_, n, lossless) = b.get_u64();
                lossless.then(|| Value::from(n))
            };
            out.ok_or_else(|| parse_error(path, "a BigInt beyond 64 bits"))
        }
        ValueType::Object => {
            if depth >= MAX_DEPTH {
                return Err(parse_error(
                    path,
                    format!("nested deeper than {MAX_DEPTH} levels (or a cycle)"),
                ));
            }
            let obj = unsafe { v.cast::<Object>() }.map_err(raw)?;
            if obj.is_array().map_err(raw)? {
                let len = obj.get_array_length().map_err(raw)?;
                let mut out = Vec::with_capacity(len as usize);
                for i in 0..len {
                    let len_before = path.len();
                    path.push_str(&format!("[{i}]"));
                    let item: Unknown = obj.get_element(i).map_err(|e| napi_error(path, e))?;
                    if item.get_type().map_err(|e| napi_error(path, e))? == ValueType::Undefined {
                        return Err(parse_error(path, "undefined is not a JSON value"));
                    }
                    out.push(convert(item, path, depth + 1, nodes)?);
                    path.truncate(len_before);
                }
                Ok(Value::Array(out))
            } else {
                let mut map = serde_json::Map::new();
                for key in Object::keys(&obj).map_err(raw)? {
                    let len_before = path.len();
                    push_key(path, &key);
                    let item: Unknown = obj
                        .get_named_property(&key)
                        .map_err(|e| napi_error(path, e))?;
                    // Like JSON.stringify: a property set to undefined is absent.
                    if item.get_type().map_err(|e| napi_error(path, e))? != ValueType::Undefined {
                        let value = convert(item, path, depth + 1, nodes)?;
                        map.insert(key, value);
                    }
                    path.truncate(len_before);
                }
                Ok(Value::Object(map))
            }
        }
        ValueType::Undefined => Err(parse_error(path, "undefined is not a JSON value")),
        ValueType::Function => Err(parse_error(path, "a function is not a JSON value")),
        ValueType::Symbol => Err(parse_error(path, "a symbol is not a JSON value")),
        _ => Err(parse_error(path, "not a JSON value")),
    }
}

/// A number option (`maxAttempts`, `pollIntervalMs`, ...) as a whole
/// number from 0 to `max`: napi's own conversion turns NaN and Infinity
/// into 0 and -1 into 4294967295 without a word.
pub fn whole(path: &str, v: Option<f64>, max: u64) -> restore_core::Result<Option<u64>> {
    let Some(f) = v else { return Ok(None) };
    let invalid = |message: String| CoreError::Invalid {
        path: path.into(),
        message,
    };
    if !f.is_finite() {
        return Err(invalid(format!("not a finite number ({})", js(f))));
    }
    if f.fract() != 0.0 || f < 0.0 || f > max as f64 {
        return Err(invalid(format!(
            "{f} is not a whole number from 0 to {max}"
        )));
    }
    Ok(Some(f as u64))
}
