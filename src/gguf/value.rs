//! Metadata values: the type tags GGUF stores and the values they tag, with the lossless
//! conversions the typed getters of [`super::GgufFile`] are built on.

/// The type tag of a metadata value, as stored in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl GgufValueType {
    /// Maps GGUF's numeric tag (0..=12) to the type; `None` for tags the format does not define.
    pub(super) fn from_id(id: u32) -> Option<Self> {
        use GgufValueType::*;
        const ALL: [GgufValueType; 13] = [
            U8, I8, U16, I16, U32, I32, F32, Bool, String, Array, U64, I64, F64,
        ];
        ALL.get(usize::try_from(id).ok()?).copied()
    }

    /// GGUF's numeric tag of the type, as the writer stores it.
    pub(super) fn id(self) -> u32 {
        self as u32
    }
}

/// One metadata value. Arrays keep their declared item type so that empty arrays stay typed.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(GgufValueType, Vec<GgufValue>),
}

impl GgufValue {
    /// Any integer value that fits in `u64`; files disagree on the width of counts and ids.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::U8(v) => Some(v.into()),
            Self::U16(v) => Some(v.into()),
            Self::U32(v) => Some(v.into()),
            Self::U64(v) => Some(v),
            Self::I8(v) => u64::try_from(v).ok(),
            Self::I16(v) => u64::try_from(v).ok(),
            Self::I32(v) => u64::try_from(v).ok(),
            Self::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer value that fits in `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Self::I8(v) => Some(v.into()),
            Self::I16(v) => Some(v.into()),
            Self::I32(v) => Some(v.into()),
            Self::I64(v) => Some(v),
            Self::U8(v) => Some(v.into()),
            Self::U16(v) => Some(v.into()),
            Self::U32(v) => Some(v.into()),
            Self::U64(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Either float width; hyper-parameters are normally F32 but some writers use F64.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::F32(v) => Some(v.into()),
            Self::F64(v) => Some(v),
            _ => None,
        }
    }

    /// The value of a BOOL.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Self::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The text of a STRING.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(v) => Some(v),
            _ => None,
        }
    }

    /// The items of an ARRAY.
    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            Self::Array(_, items) => Some(items),
            _ => None,
        }
    }

    /// Short description for "wrong type" errors, e.g. `u32` or `array of string`.
    pub(super) fn describe(&self) -> String {
        match self {
            Self::Array(item, _) => format!("array of {item:?}"),
            other => format!("{:?}", GgufValueType::of(other)),
        }
    }
}

impl GgufValueType {
    /// The tag of `value`.
    pub(super) fn of(value: &GgufValue) -> Self {
        match value {
            GgufValue::U8(_) => Self::U8,
            GgufValue::I8(_) => Self::I8,
            GgufValue::U16(_) => Self::U16,
            GgufValue::I16(_) => Self::I16,
            GgufValue::U32(_) => Self::U32,
            GgufValue::I32(_) => Self::I32,
            GgufValue::U64(_) => Self::U64,
            GgufValue::I64(_) => Self::I64,
            GgufValue::F32(_) => Self::F32,
            GgufValue::F64(_) => Self::F64,
            GgufValue::Bool(_) => Self::Bool,
            GgufValue::String(_) => Self::String,
            GgufValue::Array(..) => Self::Array,
        }
    }
}
