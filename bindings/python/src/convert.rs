//! Python values <-> JSON. Options, parameters and results cross the boundary as JSON values so
//! that core alone owns the field names, defaults and validation (`from_json` names an unknown
//! key); this module only translates types.

use crate::error::to_py;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};
use uml_core::options::MAX_VALUE_DEPTH;
use uml_core::Error;

/// A Python value as JSON. `what` names it in errors ("generate parameter 'stop'").
pub fn to_json(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Value> {
    to_json_at(obj, what, 0)
}

/// `to_json` of a value nested `depth` containers deep: deeper than core's
/// `MAX_VALUE_DEPTH` (a list that contains itself, say) is an error, not a stack overflow.
fn to_json_at(obj: &Bound<'_, PyAny>, what: &str, depth: usize) -> PyResult<Value> {
    if depth > MAX_VALUE_DEPTH {
        return Err(to_py(Error::invalid_argument(format!(
            "{what} nests lists and dicts more than {MAX_VALUE_DEPTH} deep (does it contain \
             itself?)"
        ))));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_cow()?.into_owned()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(n) = obj.extract::<i64>() {
            return Ok(Value::from(n));
        }
        if let Ok(n) = obj.extract::<u64>() {
            return Ok(Value::from(n));
        }
        return Err(bad(what, obj, "an integer too large for 64 bits"));
    }
    if obj.is_instance_of::<PyFloat>() {
        let f: f64 = obj.extract()?;
        return Number::from_f64(f).map(Value::Number).ok_or_else(|| {
            bad(
                what,
                obj,
                "a non-finite number (NaN and infinities have no JSON form)",
            )
        });
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = Map::with_capacity(d.len());
        for (k, v) in d.iter() {
            // JSON keys are strings; integer keys (logit_bias token ids) become their decimal form.
            let key = if let Ok(s) = k.cast::<PyString>() {
                s.to_cow()?.into_owned()
            } else if k.is_instance_of::<PyInt>() && !k.is_instance_of::<PyBool>() {
                k.str()?.to_cow()?.into_owned()
            } else {
                return Err(bad(
                    what,
                    &k,
                    "a key that is neither a string nor an integer",
                ));
            };
            let inner = format!("{what}['{key}']");
            map.insert(key, to_json_at(&v, &inner, depth + 1)?);
        }
        return Ok(Value::Object(map));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut items = Vec::new();
        for (i, v) in obj.try_iter()?.enumerate() {
            items.push(to_json_at(&v?, &format!("{what}[{i}]"), depth + 1)?);
        }
        return Ok(Value::Array(items));
    }
    // numpy scalars and other numeric types: anything with __index__ or __float__.
    if obj.hasattr("__index__")? {
        if let Ok(n) = obj.extract::<i64>() {
            return Ok(Value::from(n));
        }
    }
    if obj.hasattr("__float__")? {
        if let Ok(f) = obj.extract::<f64>() {
            if let Some(n) = Number::from_f64(f) {
                return Ok(Value::Number(n));
            }
        }
    }
    Err(bad(
        what,
        obj,
        "a value of a type uml cannot pass on (use str, int, float, bool, None, list or dict)",
    ))
}

fn bad(what: &str, obj: &Bound<'_, PyAny>, why: &str) -> PyErr {
    let repr = obj
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "<unprintable>".to_string());
    let ty = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_string());
    to_py(Error::invalid_argument(format!(
        "{what} = {repr} ({ty}) is {why}"
    )))
}

/// A dict of keyword arguments (or None) as the JSON object text core's `from_json` takes.
pub fn kwargs_json(kwargs: Option<&Bound<'_, PyDict>>, what: &str) -> PyResult<String> {
    match kwargs {
        None => Ok(String::new()),
        Some(d) => Ok(to_json(d.as_any(), what)?.to_string()),
    }
}

/// A serialisable core value as plain Python objects (dict, list, str, int, float, bool, None).
pub fn to_py_value<'py>(
    py: Python<'py>,
    value: &impl serde::Serialize,
) -> PyResult<Bound<'py, PyAny>> {
    let json = serde_json::to_value(value)
        .map_err(|e| to_py(Error::internal(format!("cannot serialise a result: {e}"))))?;
    from_json(py, &json)
}

/// JSON as plain Python objects.
pub fn from_json<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(from_json(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, from_json(py, v)?)?;
            }
            dict.into_any()
        }
    })
}
