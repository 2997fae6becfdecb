//! The VideoVLA network, its samplers and weight loading.
