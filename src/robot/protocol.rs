//! What travels over the openpi link: observations in, metadata and replies out
//! (../shared/docs/robot-protocol.md).
//!
//! * **Observation** (a msgpack map from the client): the image is the first of
//!   [`ObsKeys::image`] present — a uint8 array `(H, W, 3)`, `(H, W, 4)`, `(H, W)` or `(3, H, W)`
//!   (ALOHA's CHW) — and the instruction the first string of [`ObsKeys::prompt`]. A key `a/b`
//!   matches a flat key `"a/b"` or the nested map `{"a": {"b": ..}}`. An optional state vector
//!   ([`ObsKeys::state`], float) gives the end-effector position `[x, y, z, ...]` for the
//!   execution overlay. Other keys are ignored.
//! * **Frame message** (optional, this server only): a map with `"videovla/frame": true` and the
//!   same image/state keys records an intermediate execution frame at full rate and gets **no
//!   reply**; `"videovla/action_step"` (float, actions executed since the last chunk) places it
//!   on the timeline. Unmodified openpi clients never send it.
//! * **Reply**: `{"actions": (6, 7) float32, "policy_timing": {"infer_ms"}, "server_timing":
//!   {"infer_ms", "prev_total_ms"?}, "videovla": {...}}`. Everything this server adds lives under
//!   `"videovla"` as plain msgpack (bytes + shape, never an `__ndarray__` map), so openpi's
//!   `ActionChunkBroker` — which slices every ndarray leaf per step — passes it through whole.

use rmpv::Value;

use super::msgpack::{self, as_ndarray, as_number, get, map, NdArray};

/// Which observation keys hold the image, the instruction and the end-effector state (first
/// present wins). The defaults cover openpi's LIBERO, DROID and ALOHA examples and plain names.
#[derive(Clone, Debug)]
pub struct ObsKeys {
    pub image: Vec<String>,
    pub prompt: Vec<String>,
    pub state: Vec<String>,
}

impl Default for ObsKeys {
    fn default() -> Self {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect();
        ObsKeys {
            image: v(&["observation/image", "observation/exterior_image_1_left", "image", "images/cam_high", "observation/images/image"]),
            prompt: v(&["prompt", "instruction", "task", "language_instruction"]),
            state: v(&["observation/state", "state", "observation/ee_pose"]),
        }
    }
}

/// One decoded observation.
#[derive(Clone, Debug)]
pub struct Observation {
    /// The image as sent (the model's preprocessing resizes and crops it).
    pub image: image::RgbImage,
    pub image_key: String,
    pub prompt: String,
    /// The state vector when one was sent (its first three entries are read as the position).
    pub state: Option<Vec<f64>>,
    /// `Some(step)` for a frame message (see the module doc); `None` for a request.
    pub frame: Option<Option<f64>>,
    /// Optional per-request overrides.
    pub seed: Option<u64>,
    pub want_imagination: Option<bool>,
}

/// A numpy scalar (`__npgeneric__`, e.g. `np.bool_`, `np.str_`) as its plain value.
fn scalar(v: &Value) -> &Value {
    match get(v, "__npgeneric__") {
        Some(_) => get(v, "data").unwrap_or(v),
        None => v,
    }
}

/// Look up `path` as a flat key, then as nested maps split at '/'.
fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(x) = get(v, path) {
        return Some(x);
    }
    let mut cur = v;
    for part in path.split('/') {
        cur = get(cur, part)?;
    }
    Some(cur)
}

/// An image array as RGB8.
pub fn image_from_array(a: &NdArray) -> Result<image::RgbImage, String> {
    let err = |why: &str| Err(format!("image: {why}; send uint8 (H, W, 3) (or (3, H, W)), got {} {:?}", a.dtype.numpy(), a.shape));
    let px: Vec<u8> = match a.dtype {
        msgpack::Dtype::U8 => a.data.clone(),
        msgpack::Dtype::F32 | msgpack::Dtype::F64 => {
            // float images in [0, 1] (values above 1 are read as 0..255)
            let v = a.to_f64();
            let mx = v.iter().cloned().fold(0.0, f64::max);
            let k = if mx <= 1.0 { 255.0 } else { 1.0 };
            v.iter().map(|x| (x * k).round().clamp(0.0, 255.0) as u8).collect()
        }
        _ => return err("unsupported dtype"),
    };
    let (h, w, c, chw) = match a.shape.as_slice() {
        [h, w] => (*h, *w, 1, false),
        [h, w, c] if *c == 3 || *c == 4 => (*h, *w, *c, false),
        [c, h, w] if *c == 3 => (*h, *w, 3, true),
        _ => return err("unsupported shape"),
    };
    if h == 0 || w == 0 || h > 8192 || w > 8192 {
        return err("size must be 1..8192 pixels per side");
    }
    let mut out = Vec::with_capacity(h * w * 3);
    for y in 0..h {
        for x in 0..w {
            for ch in 0..3 {
                let v = if c == 1 {
                    px[y * w + x]
                } else if chw {
                    px[ch * h * w + y * w + x]
                } else {
                    px[(y * w + x) * c + ch]
                };
                out.push(v);
            }
        }
    }
    Ok(image::RgbImage::from_raw(w as u32, h as u32, out).expect("sized above"))
}

/// Decode an observation message (bytes as received) with `keys`.
pub fn parse_observation(v: &Value, keys: &ObsKeys) -> Result<Observation, String> {
    if !matches!(v, Value::Map(_)) {
        return Err("the observation must be a msgpack map (a dict of numpy arrays and a prompt)".into());
    }
    let frame = match get(v, "videovla/frame").map(scalar) {
        Some(Value::Boolean(true)) => Some(get(v, "videovla/action_step").and_then(as_number)),
        _ => None,
    };
    let (image_key, arr) = keys
        .image
        .iter()
        .find_map(|k| lookup(v, k).map(|x| (k.clone(), x)))
        .ok_or_else(|| format!("the observation has no image: expected one of the keys {:?} (configure with --image-key)", keys.image))?;
    let arr = as_ndarray(arr).ok_or_else(|| format!("observation key {image_key:?} is not a numpy array"))??;
    let image = image_from_array(&arr)?;
    let prompt = keys.prompt.iter().find_map(|k| lookup(v, k)).map(scalar).map(|p| match p {
        Value::String(s) => s.as_str().map(str::to_string).ok_or_else(|| "the prompt is not valid UTF-8".to_string()),
        Value::Binary(b) => String::from_utf8(b.clone()).map_err(|_| "the prompt is not valid UTF-8".to_string()),
        _ => match as_ndarray(p) {
            Some(_) => Err("the prompt is a numpy array; send a plain string".to_string()),
            None => Err("the prompt must be a string".to_string()),
        },
    });
    let prompt = match (prompt, frame) {
        (Some(p), _) => p?,
        (None, Some(_)) => String::new(),
        (None, None) => return Err(format!("the observation has no prompt: expected one of the keys {:?} (configure with --prompt-key)", keys.prompt)),
    };
    let state = match keys.state.iter().find_map(|k| lookup(v, k)) {
        None => None,
        Some(s) => match as_ndarray(s) {
            Some(Ok(a)) if matches!(a.dtype, msgpack::Dtype::F32 | msgpack::Dtype::F64) => Some(a.to_f64()),
            Some(Ok(a)) => return Err(format!("state: send float32/float64, got {}", a.dtype.numpy())),
            Some(Err(e)) => return Err(format!("state: {e}")),
            None => return Err("state must be a numpy array".into()),
        },
    };
    // Integers exactly (seeds go past 2^53); floats as a fallback.
    let seed = get(v, "videovla/seed").and_then(|s| scalar(s).as_u64().or_else(|| as_number(s).map(|x| x as u64)));
    let want_imagination = match get(v, "videovla/imagination").map(scalar) {
        Some(Value::Boolean(b)) => Some(*b),
        _ => None,
    };
    Ok(Observation { image, image_key, prompt, state, frame, seed, want_imagination })
}

/// The metadata sent as the first frame of every connection.
pub fn metadata(model_name: &str, action_length: usize, action_dim: usize, image_size: usize, num_frames: usize) -> Value {
    map(vec![
        ("server", Value::from(concat!("videovla ", env!("CARGO_PKG_VERSION")))),
        ("model", Value::from(model_name)),
        ("action_horizon", Value::from(action_length as u64)),
        ("action_dim", Value::from(action_dim as u64)),
        (
            "action_space",
            Value::from("delta end-effector [droll, dpitch, dyaw (rad), dx, dy, dz (m, base frame), gripper (1 open, 0 closed)]"),
        ),
        ("image_size", Value::from(image_size as u64)),
        ("imagination_frames", Value::from(num_frames as u64)),
        ("imagination_fps", Value::F64(crate::export::FPS as f64)),
        (
            "extensions",
            Value::from("reply key `videovla` (imagination as bytes + shape); optional frame messages {\"videovla/frame\": true, ...}"),
        ),
    ])
}

/// Frames as one `{"data": bytes, "shape": [T, H, W, 3], "dtype": "|u1"}` map (not an `__ndarray__`).
pub fn frames_value(frames: &[image::RgbImage], fps: f32) -> Value {
    let (w, h) = frames.first().map(|f| f.dimensions()).unwrap_or((0, 0));
    let mut data = Vec::with_capacity(frames.len() * (w * h * 3) as usize);
    for f in frames {
        data.extend_from_slice(f.as_raw());
    }
    map(vec![
        ("data", Value::Binary(data)),
        ("shape", Value::Array(vec![Value::from(frames.len() as u64), Value::from(h as u64), Value::from(w as u64), Value::from(3u64)])),
        ("dtype", Value::from("|u1")),
        ("fps", Value::F64(fps as f64)),
    ])
}

/// Inverse of [`frames_value`].
pub fn frames_from_value(v: &Value) -> Result<Vec<image::RgbImage>, String> {
    let data = match get(v, "data") {
        Some(Value::Binary(b)) => b,
        _ => return Err("frames: no `data` bytes".into()),
    };
    let shape: Vec<usize> = match get(v, "shape") {
        Some(Value::Array(a)) => a.iter().filter_map(|d| d.as_u64().map(|d| d as usize)).collect(),
        _ => return Err("frames: no `shape`".into()),
    };
    let [t, h, w, 3] = shape[..] else { return Err(format!("frames: shape {shape:?} is not (T, H, W, 3)")) };
    if h == 0 || w == 0 {
        return Err("frames: empty frames".into());
    }
    let n = t.checked_mul(h).and_then(|x| x.checked_mul(w)).and_then(|x| x.checked_mul(3));
    if n != Some(data.len()) {
        return Err("frames: data size does not match the shape".into());
    }
    Ok(data.chunks_exact(h * w * 3).map(|c| image::RgbImage::from_raw(w as u32, h as u32, c.to_vec()).unwrap()).collect())
}

/// Everything a reply carries.
pub struct Reply<'a> {
    /// The executable chunk (unnormalised; gripper binarised), `(H, D)`.
    pub actions: &'a [Vec<f32>],
    /// The model's raw (normalised) output.
    pub raw_actions: &'a [Vec<f32>],
    pub imagination: Option<&'a [image::RgbImage]>,
    pub instruction: &'a str,
    pub seed: u64,
    pub chunk_index: u64,
    pub infer_ms: f64,
    pub prev_total_ms: Option<f64>,
    pub stages: Vec<(&'static str, f64)>,
}

fn matrix(rows: &[Vec<f32>]) -> NdArray {
    let d = rows.first().map(|r| r.len()).unwrap_or(0);
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    NdArray::from_f32(vec![rows.len(), d], &flat)
}

pub fn reply_value(r: &Reply) -> Value {
    let raw: Vec<Value> = r.raw_actions.iter().map(|row| Value::Array(row.iter().map(|&x| Value::F32(x)).collect())).collect();
    let mut ext = vec![
        ("instruction", Value::from(r.instruction)),
        ("seed", Value::from(r.seed)),
        ("chunk_index", Value::from(r.chunk_index)),
        ("raw_actions", Value::Array(raw)),
        ("timing_ms", map(r.stages.iter().map(|(k, v)| (*k, Value::F64(*v))).collect())),
    ];
    if let Some(f) = r.imagination {
        ext.push(("imagination", frames_value(f, crate::export::FPS)));
    }
    let mut server_timing = vec![("infer_ms", Value::F64(r.infer_ms))];
    if let Some(p) = r.prev_total_ms {
        server_timing.push(("prev_total_ms", Value::F64(p)));
    }
    map(vec![
        ("actions", matrix(r.actions).to_value()),
        ("policy_timing", map(vec![("infer_ms", Value::F64(r.infer_ms))])),
        ("server_timing", map(server_timing)),
        ("videovla", map(ext)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(entries: Vec<(&str, Value)>) -> Value {
        map(entries)
    }

    #[test]
    fn libero_droid_aloha_and_plain_keys_are_found() {
        let img = NdArray::from_u8(vec![2, 3, 3], (0..18).collect());
        let keys = ObsKeys::default();
        for k in ["observation/image", "observation/exterior_image_1_left", "image"] {
            let o = parse_observation(&obs(vec![(k, img.to_value()), ("prompt", Value::from("pick up the red cube"))]), &keys).unwrap();
            assert_eq!(o.image.dimensions(), (3, 2));
            assert_eq!(o.image.get_pixel(1, 0).0, [3, 4, 5]);
            assert_eq!(o.prompt, "pick up the red cube");
        }
        // ALOHA: nested `images: {cam_high: (3, H, W)}`.
        let chw = NdArray::from_u8(vec![3, 2, 2], (0..12).collect());
        let o = parse_observation(
            &obs(vec![("images", map(vec![("cam_high", chw.to_value())])), ("prompt", Value::from("x"))]),
            &keys,
        )
        .unwrap();
        assert_eq!(o.image.get_pixel(1, 0).0, [1, 5, 9]);
        assert_eq!(o.image_key, "images/cam_high");
    }

    #[test]
    fn missing_or_wrong_fields_say_what_to_send() {
        let keys = ObsKeys::default();
        let e = parse_observation(&obs(vec![("prompt", Value::from("x"))]), &keys).unwrap_err();
        assert!(e.contains("no image") && e.contains("--image-key"), "{e}");
        let f = NdArray::new(msgpack::Dtype::I64, vec![1, 1, 3], vec![0; 24]).unwrap();
        let e = parse_observation(&obs(vec![("image", f.to_value()), ("prompt", Value::from("x"))]), &keys).unwrap_err();
        assert!(e.contains("uint8"), "{e}");
        let img = NdArray::from_u8(vec![1, 1, 3], vec![0; 3]);
        let e = parse_observation(&obs(vec![("image", img.to_value())]), &keys).unwrap_err();
        assert!(e.contains("no prompt"), "{e}");
        assert!(parse_observation(&Value::from(3), &keys).unwrap_err().contains("map"));
    }

    #[test]
    fn numpy_scalar_flags_and_prompts_are_unwrapped() {
        let np = |v: Value| Value::Map(vec![
            (Value::Binary(b"__npgeneric__".to_vec()), Value::Boolean(true)),
            (Value::Binary(b"data".to_vec()), v),
            (Value::Binary(b"dtype".to_vec()), Value::from("|b1")),
        ]);
        let img = NdArray::from_u8(vec![1, 1, 3], vec![0; 3]);
        let o = parse_observation(
            &obs(vec![("image", img.to_value()), ("prompt", np(Value::from("lift it"))), ("videovla/frame", np(Value::Boolean(true)))]),
            &ObsKeys::default(),
        )
        .unwrap();
        assert_eq!(o.prompt, "lift it");
        assert!(o.frame.is_some());
    }

    #[test]
    fn reply_keeps_the_imagination_out_of_ndarray_leaves() {
        let frames = vec![image::RgbImage::from_pixel(4, 2, image::Rgb([7, 8, 9])); 3];
        let acts = vec![vec![0.5f32; 7]; 6];
        let r = Reply {
            actions: &acts,
            raw_actions: &acts,
            imagination: Some(&frames),
            instruction: "x",
            seed: 1,
            chunk_index: 0,
            infer_ms: 2.0,
            prev_total_ms: None,
            stages: vec![("denoise", 1.0)],
        };
        let v = msgpack::decode(&msgpack::encode(&reply_value(&r))).unwrap();
        let a = as_ndarray(get(&v, "actions").unwrap()).unwrap().unwrap();
        assert_eq!(a.shape, vec![6, 7]);
        let ext = get(&v, "videovla").unwrap();
        assert!(as_ndarray(get(ext, "imagination").unwrap()).is_none());
        assert_eq!(frames_from_value(get(ext, "imagination").unwrap()).unwrap(), frames);
    }
}
