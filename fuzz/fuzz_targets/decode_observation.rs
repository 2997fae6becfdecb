//! Any bytes a client may send: the msgpack decoder, the ndarray checks and the observation
//! mapping must return Ok or an error, never panic, overflow or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The server's decoder sources, included by path (see fuzz/Cargo.toml); `protocol` finds
/// `super::msgpack` and `crate::export::FPS` here as it does in the videovla crate.
#[path = "../../src/robot/msgpack.rs"]
mod msgpack;
#[path = "../../src/robot/protocol.rs"]
mod protocol;
mod export {
    pub const FPS: f32 = 8.0;
}

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = msgpack::decode(data) {
        let keys = protocol::ObsKeys::default();
        if let Ok(obs) = protocol::parse_observation(&v, &keys) {
            let (w, h) = obs.image.dimensions();
            assert_eq!(obs.image.as_raw().len(), (w * h * 3) as usize);
        }
        let _ = protocol::frames_from_value(&v);
        // Re-encoding what was decoded must round-trip (compared as bytes: NaN != NaN).
        let again = msgpack::encode(&v);
        let back = msgpack::decode(&again).expect("our own encoding decodes");
        assert_eq!(msgpack::encode(&back), again);
    }
});
