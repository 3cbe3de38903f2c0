//! The serde path's visitors: they file a JSON object's fields into [`TopFields`] as they are
//! read (properties straight into their final vector, containers below them skipped
//! iteratively), and note the first unknown or repeated field for validation to report.

use super::fields::{Any, TopFields, FIELDS};
use super::reject::{RejectCode, Rejection};
use super::scalar::Scalar;
use super::validate::truncate;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

/// Visits any JSON value; `collect` says whether an object's entries are kept.
struct AnyVisitor {
    collect: bool,
}

impl<'de> Visitor<'de> for AnyVisitor {
    type Value = Any<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Any::Scalar(Scalar::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Any::Scalar(Scalar::Int(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Any::Scalar(match i64::try_from(v) {
            Ok(v) => Scalar::Int(v),
            Err(_) => Scalar::UInt(v),
        }))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Any::Scalar(Scalar::Float(v)))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Any::Scalar(Scalar::Str(Cow::Borrowed(v))))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Any::Scalar(Scalar::Str(Cow::Owned(v.to_owned()))))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Any::Scalar(Scalar::Str(Cow::Owned(v))))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Any::Scalar(Scalar::Null))
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Any::Scalar(Scalar::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Any::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        if !self.collect {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(Any::Object(Vec::new(), None));
        }
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
        let mut first_non_scalar = None;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match map.next_value_seed(AnySeed { collect: false })? {
                Any::Scalar(scalar) => entries.push((key.0, scalar)),
                other => {
                    if first_non_scalar.is_none() {
                        first_non_scalar = Some((key.0, other.kind()));
                    }
                }
            }
        }
        Ok(Any::Object(entries, first_non_scalar))
    }
}

struct AnySeed {
    collect: bool,
}

impl<'de> de::DeserializeSeed<'de> for AnySeed {
    type Value = Any<'de>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Any<'de>, D::Error> {
        deserializer.deserialize_any(AnyVisitor {
            collect: self.collect,
        })
    }
}

/// An object key, borrowed when it had no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The top-level JSON value.
pub(super) enum Top<'a> {
    Object(Box<TopFields<'a>>),
    Other(&'static str),
}

impl<'de> Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TopVisitor;
        impl<'de> Visitor<'de> for TopVisitor {
            type Value = Top<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Box::<TopFields<'de>>::default();
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    let index = FIELDS.iter().position(|name| *name == key.0.as_ref());
                    match index {
                        Some(index) if fields.slots[index].is_none() => {
                            fields.slots[index] = Some(map.next_value_seed(AnySeed {
                                collect: index == 4,
                            })?);
                        }
                        Some(_) => {
                            map.next_value::<IgnoredAny>()?;
                            fields.structural.get_or_insert_with(|| {
                                Rejection::new(
                                    RejectCode::DuplicateField,
                                    format!("field `{}` appears more than once", key.0),
                                )
                            });
                        }
                        None => {
                            map.next_value::<IgnoredAny>()?;
                            fields.structural.get_or_insert_with(|| Rejection::new(
                                RejectCode::UnknownField,
                                format!(
                                    "unknown field `{}`; an event has id, tenant_id, source, event_type, properties, occurred_at, weight",
                                    truncate(&key.0, 64)
                                ),
                            ));
                        }
                    }
                }
                Ok(Top::Object(fields))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Top::Other("an array"))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Top::Other("a boolean"))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Top::Other("a number"))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Top::Other("a number"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Top::Other("a number"))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Top::Other("a string"))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Top::Other("null"))
            }
        }
        deserializer.deserialize_any(TopVisitor)
    }
}
