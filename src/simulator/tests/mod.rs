//! Tests of the simulator over real HTTP on loopback.
