//! The robot link: openpi's websocket policy protocol (`msgpack`, `protocol`), the policy
//! server (`server`), a client (`client`, used by `videovla sim connect`) and the execution
//! recording that pairs each imagination with what the robot then did (`recording`).

pub mod client;
pub mod msgpack;
pub mod protocol;
pub mod recording;
pub mod server;
