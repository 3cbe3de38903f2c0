//! Scalar property values and their canonical text form.

use serde::{Serialize, Serializer};
use std::borrow::Cow;
use std::fmt::Write as _;

/// A property value: JSON scalars only.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar<'a> {
    /// JSON `null`.
    Null,
    /// JSON `true` / `false`.
    Bool(bool),
    /// An integer that fits `i64`.
    Int(i64),
    /// A non-negative integer above `i64::MAX`.
    UInt(u64),
    /// Any other number.
    Float(f64),
    /// A string.
    Str(Cow<'a, str>),
}

impl<'a> Scalar<'a> {
    /// The numeric value, for `field` metrics. Strings are not converted: a metric's numeric
    /// field must be sent as a JSON number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Int(v) => Some(*v as f64),
            Self::UInt(v) => Some(*v as f64),
            Self::Float(v) => Some(*v),
            _ => None,
        }
    }

    /// Appends the canonical text of the value to `out`: strings verbatim, integers in
    /// decimal, floats in the shortest round-trip form (`1.5`, `1e300`), booleans as
    /// `true`/`false`, null as the empty string. Canonical text is what dimension values and
    /// unique-count keys are made of, so `42` and `"42"` count as the same user.
    pub fn write_canonical(&self, out: &mut String) {
        match self {
            Self::Null => {}
            Self::Bool(v) => out.push_str(if *v { "true" } else { "false" }),
            Self::Int(v) => {
                if *v < 0 {
                    out.push('-');
                }
                push_decimal(out, v.unsigned_abs());
            }
            Self::UInt(v) => push_decimal(out, *v),
            Self::Float(v) => {
                if v.fract() == 0.0 && v.abs() < 1e15 {
                    let _ = write!(out, "{}", *v as i64);
                } else {
                    let _ = write!(out, "{v}");
                }
            }
            Self::Str(v) => out.push_str(v),
        }
    }

    /// The canonical text as a new string.
    pub fn canonical(&self) -> Cow<'_, str> {
        match self {
            Self::Str(v) => Cow::Borrowed(v.as_ref()),
            other => {
                let mut out = String::new();
                other.write_canonical(&mut out);
                Cow::Owned(out)
            }
        }
    }

    /// A view of the value borrowing from `self`.
    pub fn reborrow(&self) -> Scalar<'_> {
        match self {
            Self::Null => Scalar::Null,
            Self::Bool(v) => Scalar::Bool(*v),
            Self::Int(v) => Scalar::Int(*v),
            Self::UInt(v) => Scalar::UInt(*v),
            Self::Float(v) => Scalar::Float(*v),
            Self::Str(v) => Scalar::Str(Cow::Borrowed(v.as_ref())),
        }
    }

    /// A copy that owns its string.
    pub fn into_owned(self) -> Scalar<'static> {
        match self {
            Self::Null => Scalar::Null,
            Self::Bool(v) => Scalar::Bool(v),
            Self::Int(v) => Scalar::Int(v),
            Self::UInt(v) => Scalar::UInt(v),
            Self::Float(v) => Scalar::Float(v),
            Self::Str(v) => Scalar::Str(Cow::Owned(v.into_owned())),
        }
    }
}

/// Appends `value` in decimal (what `write!(out, "{value}")` writes, without `core::fmt`,
/// which costs more than the rest of a dimension key on the aggregation hot path).
fn push_decimal(out: &mut String, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
}

impl Serialize for Scalar<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Null => serializer.serialize_unit(),
            Self::Bool(v) => serializer.serialize_bool(*v),
            Self::Int(v) => serializer.serialize_i64(*v),
            Self::UInt(v) => serializer.serialize_u64(*v),
            Self::Float(v) => serializer.serialize_f64(*v),
            Self::Str(v) => serializer.serialize_str(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_text_unifies_numbers_and_strings() {
        assert_eq!(Scalar::Int(42).canonical(), "42");
        assert_eq!(Scalar::Int(0).canonical(), "0");
        assert_eq!(Scalar::Int(i64::MIN).canonical(), "-9223372036854775808");
        assert_eq!(Scalar::Float(42.0).canonical(), "42");
        assert_eq!(Scalar::Str(Cow::Borrowed("42")).canonical(), "42");
        assert_eq!(Scalar::Float(1.5).canonical(), "1.5");
        assert_eq!(Scalar::Bool(true).canonical(), "true");
        assert_eq!(Scalar::Null.canonical(), "");
        assert_eq!(Scalar::UInt(u64::MAX).canonical(), "18446744073709551615");
    }

    #[test]
    fn only_numbers_are_numeric() {
        assert_eq!(Scalar::Int(-3).as_f64(), Some(-3.0));
        assert_eq!(Scalar::Float(2.5).as_f64(), Some(2.5));
        assert_eq!(Scalar::Str(Cow::Borrowed("2.5")).as_f64(), None);
        assert_eq!(Scalar::Bool(true).as_f64(), None);
    }
}
