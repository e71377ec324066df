//! The broker: its parts wired together, start-up and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use indexmap::IndexMap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{BrokerConfig, Endpoint};
use crate::coordinator::group::GroupCoordinator;
use crate::coordinator::txn::TxnCoordinator;
use crate::coordinator::SystemClock;
use crate::log::LogManager;
use crate::metadata::{MetadataError, MetadataStore, TopicInfo};

pub struct Broker {
    pub config: BrokerConfig,
    pub metadata: MetadataStore,
    pub logs: Arc<LogManager>,
    /// Index for index with `config.listeners`: what a client that came in
    /// through that listener is told (Metadata, FindCoordinator), as Kafka
    /// answers with the endpoint of the listener the request arrived on.
    /// Ports are resolved after binding so `:0` works in tests; never empty.
    pub advertised_by_listener: Vec<Endpoint>,
    pub groups: GroupCoordinator,
    pub txns: TxnCoordinator,
    /// Counters for the `/metrics` endpoint.
    pub metrics: crate::metrics::Metrics,
}

impl Broker {
    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// The advertised endpoint of listener `index` (the first one if out of range).
    pub fn advertised_for(&self, index: usize) -> &Endpoint {
        let all = &self.advertised_by_listener;
        all.get(index)
            .or(all.first())
            .expect("start() refuses a broker without listeners")
    }

    /// Creates a topic: validated, partition directories made, then the
    /// metadata record written and the topic published.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        overrides: IndexMap<String, String>,
    ) -> Result<Arc<TopicInfo>, MetadataError> {
        let mut made = None;
        let created = self
            .metadata
            .create_topic(name, partitions, overrides, |info| {
                self.logs
                    .create_topic(info)
                    .map_err(|source| MetadataError::Io {
                        path: self.logs.dir().to_path_buf(),
                        source,
                    })?;
                made = Some(info.clone());
                Ok(())
            });
        let info = match (created, made) {
            (Ok(info), _) => info,
            (Err(e), Some(made)) => {
                // The record was not written: the logs must go too, or they
                // stay live (and on disk) beside a topic nobody knows.
                if let Err(undo) = self.logs.delete_topic(&made) {
                    tracing::error!(
                        topic = name,
                        "removing logs after a failed metadata write: {undo}"
                    );
                }
                return Err(e);
            }
            (Err(e), None) => return Err(e),
        };
        tracing::info!(topic = name, partitions, id = %info.id, "created topic");
        Ok(info)
    }

    pub fn delete_topic(&self, id: uuid::Uuid) -> Result<Arc<TopicInfo>, MetadataError> {
        let info = self.metadata.delete_topic(id)?;
        self.logs
            .delete_topic(&info)
            .map_err(|source| MetadataError::Io {
                path: self.logs.dir().to_path_buf(),
                source,
            })?;
        tracing::info!(topic = %info.name, "deleted topic");
        Ok(info)
    }
}

/// A running broker. Dropping it does not stop it; call [`shutdown`].
///
/// [`shutdown`]: BrokerHandle::shutdown
pub struct BrokerHandle {
    pub broker: Arc<Broker>,
    addrs: Vec<SocketAddr>,
    shutdown_tx: watch::Sender<bool>,
    accept_tasks: Vec<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
    metrics_addr: Option<SocketAddr>,
}

impl BrokerHandle {
    /// Where `/metrics` and `/health` are served, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Every bound listener's address, in `config.listeners` order.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// `host:port` of the advertised listener, for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        let advertised = self.broker.advertised_for(0);
        format!("{}:{}", advertised.host, advertised.port)
    }

    /// Stops accepting, lets connections answer what they already read,
    /// flushes and seals every partition, and writes the clean-shutdown marker.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.shutdown_tx.send(true);
        for t in self.accept_tasks {
            let _ = t.await;
        }
        for t in self.background {
            t.abort();
        }
        self.broker.groups.stop();
        self.broker.txns.stop();
        let logs = self.broker.logs.clone();
        tokio::task::spawn_blocking(move || logs.shutdown())
            .await
            .context("shutdown task")?
            .context("flushing logs")?;
        tracing::info!("shut down cleanly");
        Ok(())
    }

    /// Resolves when a shutdown has been requested through [`trigger`].
    pub fn shutdown_sender(&self) -> watch::Sender<bool> {
        self.shutdown_tx.clone()
    }
}

/// Binds the listeners, opens (and if needed recovers) the data directory and
/// starts serving.
pub async fn start(config: BrokerConfig) -> anyhow::Result<BrokerHandle> {
    let mut listeners = Vec::new();
    let mut addrs = Vec::new();
    for ep in &config.listeners {
        let addr = crate::config::bind_addr(ep)
            .await
            .with_context(|| format!("resolving listener {ep}"))?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding listener {ep} ({addr})"))?;
        addrs.push(listener.local_addr()?);
        listeners.push(listener);
    }
    anyhow::ensure!(!listeners.is_empty(), "no listeners configured");
    // Bound before the logs are opened: `/health` answers "starting" during
    // recovery.
    let metrics_server = crate::metrics::MetricsServer::bind(&config)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let metrics_addr = metrics_server.as_ref().map(|s| s.addr);
    crate::config::log_skipped_listeners(&config);
    let advertised_by_listener: Vec<Endpoint> = config
        .listeners
        .iter()
        .enumerate()
        .map(|(i, bound)| {
            let mut ep = config
                .advertised_listeners
                .get(i)
                .cloned()
                .unwrap_or_else(|| bound.clone());
            if ep.port == 0 {
                ep.port = addrs[i].port();
            }
            if ep.host.is_empty() || ep.host == "0.0.0.0" {
                ep.host = "localhost".to_string();
            }
            ep
        })
        .collect();

    let dir = config.log_dir.clone();
    let defaults = config.topic_defaults.clone();
    let node_id = config.node_id;
    let cluster_override = config.cluster_id_override.clone();
    let static_config = config.clone();
    let (metadata, logs) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let metadata = MetadataStore::open(&dir, node_id, cluster_override.as_deref(), defaults)
            .with_context(|| format!("opening metadata in {}", dir.display()))?;
        // Dynamic broker configs from the metadata log layer over the static ones.
        metadata.use_broker_config(&static_config);
        let logs = LogManager::open(&dir, &metadata.image())
            .with_context(|| format!("opening logs in {}", dir.display()))?;
        Ok((metadata, logs))
    })
    .await??;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let groups = GroupCoordinator::new(
        config.group.clone(),
        Arc::new(SystemClock),
        shutdown_rx.clone(),
    );
    let txns = TxnCoordinator::new(
        config.txn.clone(),
        Arc::new(SystemClock),
        shutdown_rx.clone(),
    );
    let metrics = crate::metrics::Metrics::new(&config);
    let broker = Arc::new(Broker {
        config,
        metadata,
        logs: Arc::new(logs),
        advertised_by_listener,
        groups,
        txns,
        metrics,
    });
    if let Err(code) = broker.groups.start_if_present(&broker).await {
        anyhow::bail!("starting the group coordinator failed (error {code})");
    }
    if let Err(code) = broker.txns.start_if_present(&broker).await {
        anyhow::bail!("starting the transaction coordinator failed (error {code})");
    }
    broker
        .logs
        .set_cleaner_config(broker.config.log_cleaner.clone());
    let mut background = broker.logs.start_background(
        broker.config.log_retention_check_interval_ms,
        shutdown_rx.clone(),
    );
    let accept_tasks = listeners
        .into_iter()
        .enumerate()
        .map(|(index, l)| {
            tokio::spawn(crate::server::accept_loop(
                broker.clone(),
                l,
                index,
                shutdown_rx.clone(),
            ))
        })
        .collect();
    if let Some(server) = metrics_server {
        background.push(server.serve(broker.clone(), shutdown_rx.clone()));
    }
    tracing::info!(
        listeners = ?addrs,
        advertised = %broker
            .advertised_by_listener
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(","),
        cluster_id = broker.metadata.cluster_id(),
        node_id = broker.node_id(),
        "runnel started"
    );
    Ok(BrokerHandle {
        broker,
        addrs,
        shutdown_tx,
        accept_tasks,
        background,
        metrics_addr,
    })
}
