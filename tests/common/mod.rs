//! Shared helpers for client tests: a real broker started in-process on an
//! ephemeral port with its own temporary data directory.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use runnel::broker::{self, BrokerHandle};
use runnel::BrokerConfig;
use tempfile::TempDir;

pub struct TestBroker {
    pub handle: Option<BrokerHandle>,
    pub dir: TempDir,
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
        let dir = tempfile::tempdir().expect("tempdir");
        let handle = start_in(dir.path(), configure).await;
        TestBroker {
            handle: Some(handle),
            dir,
        }
    }

    pub fn bootstrap(&self) -> String {
        self.handle.as_ref().expect("running").bootstrap_servers()
    }

    /// Clean shutdown and start again on the same data directory (the port
    /// changes).
    pub async fn restart_with(&mut self, configure: impl FnOnce(&mut BrokerConfig)) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await.expect("clean shutdown");
        }
        self.handle = Some(start_in(self.dir.path(), configure).await);
    }

    pub async fn restart(&mut self) {
        self.restart_with(|_| {}).await
    }

    pub async fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await.expect("clean shutdown");
        }
    }
}

pub async fn start_in(dir: &Path, configure: impl FnOnce(&mut BrokerConfig)) -> BrokerHandle {
    let mut config = BrokerConfig::default_for_tests(dir.to_path_buf());
    configure(&mut config);
    broker::start(config).await.expect("broker starts")
}

pub const TIMEOUT: Duration = Duration::from_secs(30);
