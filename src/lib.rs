//! Runnel: a broker that speaks Apache Kafka's wire protocol.
//!
//! Request path (DESIGN §2): `server` (sockets, framing) → `protocol`
//! (header, version gate) → `api` (one module per API family) → `log` /
//! `metadata` → `protocol` (encode) → `server`.

pub mod api;
pub mod broker;
pub mod config;
pub mod coordinator;
pub mod log;
pub mod metadata;
pub mod metrics;
pub mod protocol;
pub mod server;

pub use broker::{Broker, BrokerHandle};
pub use config::{BrokerConfig, GroupConfig};
