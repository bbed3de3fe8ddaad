//! The simulated Microsoft (placeholder; being built).
