//! Reading fields of a normalized event (ECS, as JSON) by dotted path.

use serde_json::Value;

/// Look up a dotted path in a JSON object.
pub fn lookup<'a>(event: &'a Value, path: &str) -> Option<&'a Value> {
    lookup_segments(event, path.split('.'))
}

/// Look up a path given as segments; a numeric segment indexes an array (`process.args.0`).
pub fn lookup_segments<'a, 'p>(
    event: &'a Value,
    path: impl IntoIterator<Item = &'p str>,
) -> Option<&'a Value> {
    path.into_iter().try_fold(event, |v, key| match v {
        Value::Array(items) => items.get(key.parse::<usize>().ok()?),
        _ => v.get(key),
    })
}

/// A field value usable as a key: a non-empty string or a number.
pub fn key_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `s` lowercased, without allocating when it has no uppercase letters.
pub(crate) fn lowercase(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
        std::borrow::Cow::Owned(s.to_lowercase())
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}
