//! The simulated Microsoft (temporary stand-in while the real one is built).

/// Settings of the simulated Microsoft.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub client_id: String,
    pub client_secret: String,
    pub token_lifetime: std::time::Duration,
    pub pending_polls: u32,
    pub group_name: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            client_id: "00000000-0000-4000-8000-00000000c1d0".into(),
            client_secret: "simulated-client-secret".into(),
            token_lifetime: std::time::Duration::from_secs(3600),
            pending_polls: 2,
            group_name: "Fleet conditional access".into(),
        }
    }
}

#[derive(Clone)]
pub struct Simulator;

impl Simulator {
    pub async fn start(_config: SimConfig) -> std::io::Result<Simulator> {
        Err(std::io::Error::other("the simulator is not built yet"))
    }
    pub fn base_url(&self) -> String {
        String::new()
    }
    pub fn login_url(&self) -> String {
        String::new()
    }
    pub fn graph_url(&self) -> String {
        String::new()
    }
    pub async fn shutdown(self) {}
}
