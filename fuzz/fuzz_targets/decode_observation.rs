//! Any bytes a client may send: the msgpack decoder, the ndarray checks and the observation
//! mapping must return Ok or an error, never panic, overflow or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The server's decoder sources, included by path (see fuzz/Cargo.toml).
mod robot {
    #[path = "../../../src/robot/msgpack.rs"]
    pub mod msgpack;
    #[path = "../../../src/robot/protocol.rs"]
    pub mod protocol;
}
mod export {
    pub const FPS: f32 = 8.0;
}

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = robot::msgpack::decode(data) {
        let keys = robot::protocol::ObsKeys::default();
        if let Ok(obs) = robot::protocol::parse_observation(&v, &keys) {
            let (w, h) = obs.image.dimensions();
            assert_eq!(obs.image.as_raw().len(), (w * h * 3) as usize);
        }
        let _ = robot::protocol::frames_from_value(&v);
        // Re-encoding what was decoded must round-trip.
        let again = robot::msgpack::encode(&v);
        assert_eq!(robot::msgpack::decode(&again).ok(), Some(v));
    }
});
