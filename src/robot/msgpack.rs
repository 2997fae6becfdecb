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

/// Most msgpack elements one message may hold. A decoded element costs ~48 bytes however small
/// it was on the wire, so without a cap a 64 MiB array of `nil`s would decode to ~3 GiB.
pub const MAX_ELEMENTS: usize = 1 << 20;

/// Count the elements of one msgpack value (arrays and maps count their children) without
/// allocating; stops with an error past `limit` or at a malformed/truncated marker.
pub fn count_elements(bytes: &[u8], limit: usize) -> Result<usize, String> {
    let (mut pos, mut pending, mut count) = (0usize, 1usize, 0usize);
    let rd = |pos: usize, n: usize| -> Result<u64, String> {
        let b = bytes.get(pos..pos + n).ok_or("malformed msgpack: truncated")?;
        Ok(b.iter().fold(0u64, |a, &x| (a << 8) | x as u64))
    };
    while pending > 0 {
        pending -= 1;
        count += 1;
        if count > limit {
            return Err(format!("the message holds more than {limit} msgpack elements; send images as numpy arrays"));
        }
        let m = *bytes.get(pos).ok_or("malformed msgpack: truncated")?;
        pos += 1;
        // (bytes to skip after the marker, child elements)
        let len = |n: usize| -> Result<u64, String> { Ok(n as u64 + rd(pos, n)?) }; // length field + payload
        let (skip, children): (u64, u64) = match m {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (0, 2 * (m & 0x0f) as u64),
            0x90..=0x9f => (0, (m & 0x0f) as u64),
            0xa0..=0xbf => ((m & 0x1f) as u64, 0),
            0xc4 | 0xd9 => (len(1)?, 0),
            0xc5 | 0xda => (len(2)?, 0),
            0xc6 | 0xdb => (len(4)?, 0),
            0xc7 => (len(1)? + 1, 0), // ext: + type byte
            0xc8 => (len(2)? + 1, 0),
            0xc9 => (len(4)? + 1, 0),
            0xca => (4, 0),
            0xcb => (8, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xce | 0xd2 => (4, 0),
            0xcf | 0xd3 => (8, 0),
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (2, rd(pos, 2)?),
            0xdd => (4, rd(pos, 4)?),
            0xde => (2, 2 * rd(pos, 2)?),
            0xdf => (4, 2 * rd(pos, 4)?),
            0xc1 => return Err("malformed msgpack: reserved marker 0xc1".into()),
        };
        pos = pos.checked_add(skip as usize).filter(|&p| p <= bytes.len()).ok_or("malformed msgpack: truncated")?;
        pending = pending.checked_add(children as usize).ok_or("malformed msgpack: too many elements")?;
        if pending > limit {
            return Err(format!("the message holds more than {limit} msgpack elements; send images as numpy arrays"));
        }
    }
    Ok(count)
}

/// Decode one message. Trailing bytes, nesting deeper than 64 or more than [`MAX_ELEMENTS`]
/// elements are errors.
pub fn decode(bytes: &[u8]) -> Result<Value, String> {
    count_elements(bytes, MAX_ELEMENTS)?;
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
    fn element_counting_bounds_the_decode() {
        let v = map(vec![("a", Value::Array(vec![Value::Nil; 5])), ("b", NdArray::from_u8(vec![3], vec![1, 2, 3]).to_value())]);
        let b = encode(&v);
        // map + 2 keys + array + 5 nils + ndarray map (4 keys, 4 values, 1 shape entry)
        assert_eq!(count_elements(&b, 100).unwrap(), 1 + 2 + 1 + 5 + 1 + 8 + 1);
        assert!(count_elements(&b, 10).unwrap_err().contains("more than 10"));
        // A huge declared array of nils is refused before anything is allocated.
        let mut big = vec![0xdd, 0x7f, 0xff, 0xff, 0xff];
        big.extend(std::iter::repeat_n(0xc0, 1000));
        assert!(decode(&big).unwrap_err().contains("elements"));
        assert!(count_elements(&b[..b.len() - 1], 100).unwrap_err().contains("truncated"));
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
