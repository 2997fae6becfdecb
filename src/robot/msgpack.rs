//! openpi's msgpack-numpy encoding (`openpi_client/msgpack_numpy.py`), over `rmpv`.
//!
//! An array is the map `{b"__ndarray__": True, b"data": <bin, C order>, b"dtype": "<f4", b"shape": [..]}`
//! and a numpy scalar `{b"__npgeneric__": True, b"data": <value>, b"dtype": ".."}`; the marker keys
//! are msgpack **bin** (the client's `object_hook` tests `b"__ndarray__" in obj`). Everything else is
//! plain msgpack. Decoding accepts str or bin marker keys; encoding always writes bin.

use rmpv::Value;

/// Element types the server understands (numpy `dtype.str`). Others (`<U`, `O`, `V`, `c`) are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    U8,
    Bool,
    I32,
    I64,
    F16,
    F32,
    F64,
}

impl Dtype {
    pub fn parse(s: &str) -> Result<Dtype, String> {
        Ok(match s {
            "|u1" | "u1" | "uint8" => Dtype::U8,
            "|b1" | "b1" | "bool" => Dtype::Bool,
            "<i4" | "int32" => Dtype::I32,
            "<i8" | "int64" => Dtype::I64,
            "<f2" | "float16" => Dtype::F16,
            "<f4" | "float32" => Dtype::F32,
            "<f8" | "float64" => Dtype::F64,
            other => {
                return Err(format!(
                    "unsupported array dtype {other:?}: send uint8 images and float32/float64 numbers (little-endian)"
                ))
            }
        })
    }
    pub fn numpy(self) -> &'static str {
        match self {
            Dtype::U8 => "|u1",
            Dtype::Bool => "|b1",
            Dtype::I32 => "<i4",
            Dtype::I64 => "<i8",
            Dtype::F16 => "<f2",
            Dtype::F32 => "<f4",
            Dtype::F64 => "<f8",
        }
    }
    pub fn size(self) -> usize {
        match self {
            Dtype::U8 | Dtype::Bool => 1,
            Dtype::F16 => 2,
            Dtype::I32 | Dtype::F32 => 4,
            Dtype::I64 | Dtype::F64 => 8,
        }
    }
}

/// A decoded numpy array: validated so that `data.len() == shape.product() * dtype.size()`.
#[derive(Clone, Debug, PartialEq)]
pub struct NdArray {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl NdArray {
    pub fn new(dtype: Dtype, shape: Vec<usize>, data: Vec<u8>) -> Result<NdArray, String> {
        let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("array shape overflows")?;
        let want = n.checked_mul(dtype.size()).ok_or("array shape overflows")?;
        if want != data.len() {
            return Err(format!(
                "array data is {} bytes but shape {:?} of {} needs {want}",
                data.len(),
                shape,
                dtype.numpy()
            ));
        }
        Ok(NdArray { dtype, shape, data })
    }

    pub fn from_f32(shape: Vec<usize>, v: &[f32]) -> NdArray {
        let data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        NdArray::new(Dtype::F32, shape, data).expect("shape matches data")
    }

    pub fn from_u8(shape: Vec<usize>, data: Vec<u8>) -> NdArray {
        NdArray::new(Dtype::U8, shape, data).expect("shape matches data")
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as f64 (any numeric dtype).
    pub fn to_f64(&self) -> Vec<f64> {
        let d = &self.data;
        match self.dtype {
            Dtype::U8 | Dtype::Bool => d.iter().map(|&b| b as f64).collect(),
            Dtype::I32 => d.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
            Dtype::I64 => d.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
            Dtype::F16 => d.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f64()).collect(),
            Dtype::F32 => d.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
            Dtype::F64 => d.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
        }
    }

    pub fn to_value(&self) -> Value {
        Value::Map(vec![
            (bin("__ndarray__"), Value::Boolean(true)),
            (bin("data"), Value::Binary(self.data.clone())),
            (bin("dtype"), Value::from(self.dtype.numpy())),
            (bin("shape"), Value::Array(self.shape.iter().map(|&d| Value::from(d as u64)).collect())),
        ])
    }
}

fn bin(s: &str) -> Value {
    Value::Binary(s.as_bytes().to_vec())
}

/// Does map key `k` spell `name` (as bin or str)?
pub fn key_is(k: &Value, name: &str) -> bool {
    match k {
        Value::Binary(b) => b.as_slice() == name.as_bytes(),
        Value::String(s) => s.as_str() == Some(name),
        _ => false,
    }
}

/// The value under `name` in a msgpack map.
pub fn get<'a>(map: &'a Value, name: &str) -> Option<&'a Value> {
    match map {
        Value::Map(kv) => kv.iter().find(|(k, _)| key_is(k, name)).map(|(_, v)| v),
        _ => None,
    }
}

/// `Some(Ok(array))` if `v` is an `__ndarray__` map, `Some(Err)` if it is one but malformed.
pub fn as_ndarray(v: &Value) -> Option<Result<NdArray, String>> {
    let marker = get(v, "__ndarray__")?;
    if !matches!(marker, Value::Boolean(true)) {
        return None;
    }
    Some((|| {
        let data = match get(v, "data") {
            Some(Value::Binary(b)) => b.clone(),
            _ => return Err("array has no binary `data`".to_string()),
        };
        let dtype = match get(v, "dtype") {
            Some(Value::String(s)) => Dtype::parse(s.as_str().ok_or("array dtype is not UTF-8")?)?,
            Some(Value::Binary(b)) => Dtype::parse(std::str::from_utf8(b).map_err(|_| "array dtype is not UTF-8")?)?,
            _ => return Err("array has no `dtype` string".to_string()),
        };
        let shape = match get(v, "shape") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|d| d.as_u64().map(|d| d as usize).ok_or("array shape holds a non-integer"))
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err("array has no `shape` list".to_string()),
        };
        NdArray::new(dtype, shape, data)
    })())
}

/// A numpy scalar (`__npgeneric__`) or plain msgpack number as f64.
pub fn as_number(v: &Value) -> Option<f64> {
    if let Some(d) = get(v, "__npgeneric__").and(get(v, "data")) {
        return as_number(d);
    }
    match v {
        Value::Integer(i) => i.as_f64(),
        Value::F32(x) => Some(*x as f64),
        Value::F64(x) => Some(*x),
        Value::Boolean(b) => Some(*b as u8 as f64),
        _ => None,
    }
}

/// Decode one message. Trailing bytes, or nesting deeper than 64, are errors.
pub fn decode(bytes: &[u8]) -> Result<Value, String> {
    let mut rd = bytes;
    let v = rmpv::decode::read_value_with_max_depth(&mut rd, 64).map_err(|e| format!("malformed msgpack: {e}"))?;
    if !rd.is_empty() {
        return Err(format!("malformed msgpack: {} trailing bytes after the message", rd.len()));
    }
    Ok(v)
}

pub fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, v).expect("writing to a Vec cannot fail");
    out
}

/// Build a str-keyed map.
pub fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (Value::from(k), v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_encode_with_bin_marker_keys_as_openpi_does() {
        // The protocol doc's measured prefix: 82 a7 "actions" 84 c4 0b "__ndarray__" c3 c4 04 "data" c4 38
        let a = NdArray::from_f32(vec![2, 7], &[0.5; 14]);
        let v = map(vec![("actions", a.to_value()), ("x", Value::Nil)]);
        let b = encode(&v);
        let mut want = vec![0x82, 0xa7];
        want.extend(b"actions");
        want.extend([0x84, 0xc4, 0x0b]);
        want.extend(b"__ndarray__");
        want.extend([0xc3, 0xc4, 0x04]);
        want.extend(b"data");
        want.extend([0xc4, 0x38]);
        assert_eq!(&b[..want.len()], &want[..]);
        let back = decode(&b).unwrap();
        let arr = as_ndarray(get(&back, "actions").unwrap()).unwrap().unwrap();
        assert_eq!(arr, a);
        assert_eq!(arr.to_f64(), vec![0.5; 14]);
    }

    #[test]
    fn bad_arrays_are_refused_with_a_reason() {
        let mut v = NdArray::from_u8(vec![2, 2], vec![1, 2, 3, 4]).to_value();
        if let Value::Map(kv) = &mut v {
            kv[1].1 = Value::Binary(vec![1, 2, 3]);
        }
        assert!(as_ndarray(&v).unwrap().unwrap_err().contains("3 bytes"));
        let mut s = NdArray::from_u8(vec![1], vec![1]).to_value();
        if let Value::Map(kv) = &mut s {
            kv[2].1 = Value::from("<U4");
        }
        assert!(as_ndarray(&s).unwrap().unwrap_err().contains("unsupported array dtype"));
        assert!(decode(&[0x92, 0x01]).unwrap_err().contains("malformed"));
        assert!(decode(&[0x01, 0x02]).unwrap_err().contains("trailing"));
        // A huge shape cannot overflow the size check.
        assert!(NdArray::new(Dtype::F64, vec![usize::MAX, 3], vec![]).is_err());
    }

    #[test]
    fn numpy_scalars_and_plain_numbers() {
        let s = Value::Map(vec![
            (bin("__npgeneric__"), Value::Boolean(true)),
            (bin("data"), Value::F64(2.5)),
            (bin("dtype"), Value::from("<f8")),
        ]);
        assert_eq!(as_number(&s), Some(2.5));
        assert_eq!(as_number(&Value::from(3)), Some(3.0));
    }
}
