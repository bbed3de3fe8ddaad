//! compliance-proxy: a Microsoft Intune compliance-partner proxy for Fleet servers.

#![forbid(unsafe_code)]

pub mod simulator;
