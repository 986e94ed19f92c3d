//! Packet literals and frame parsing (being written).
