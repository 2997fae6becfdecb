//! The built-in tabletop robot simulator.
