//! Observability: the counters the request path bumps, the Prometheus page
//! built from them and from live broker state (`scrape`), the per-request
//! timer (tracing span, latency histogram, slow-request log), and the HTTP
//! endpoint serving `/metrics` and `/health` (`http`).
//!
//! Metric names are Kafka's JMX names as the Prometheus JMX exporter (and
//! Strimzi's rules) spell them, so existing Kafka dashboards find them:
//! `kafka.server:type=BrokerTopicMetrics,name=BytesInPerSec,topic=t` becomes
//! `kafka_server_brokertopicmetrics_bytesin_total{topic="t"}`, the all-topics
//! value is the same name without a label. What Kafka has no metric for is
//! named `runnel_*`.
//!
//! Hot path cost: atomics only. Per-topic counters sit behind a read-mostly
//! lock that a request takes once per topic; a topic's entry is created on its
//! first produce or fetch and dropped at the first scrape after the topic is
//! deleted.

pub mod exposition;
pub mod http;
mod scrape;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;
use parking_lot::RwLock;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::api::{RequestContext, ResponseFuture};
use crate::broker::Broker;
use crate::config::BrokerConfig;

/// The broker key of the HTTP listener; empty disables it.
pub const LISTENER_KEY: &str = "runnel.metrics.listener";

/// Where the metrics endpoint listens, parsed from [`LISTENER_KEY`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsListener {
    pub host: String,
    pub port: u16,
    /// Set explicitly: failing to bind stops the broker. The default only
    /// logs a warning, so two brokers on one machine (or parallel tests) do
    /// not fail over a port nobody asked for.
    pub required: bool,
}

impl MetricsListener {
    /// `http://host:port` or `host:port`; an empty host binds every
    /// interface, IPv6 hosts go in brackets. Empty disables the endpoint.
    pub fn parse(raw: &str, required: bool) -> Result<Option<MetricsListener>, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Ok(None);
        }
        let rest = match s.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(format!("scheme {scheme} is not supported (use http)"))
            }
            None => s,
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| "expected http://host:port".to_owned())?;
        let host = match host.strip_prefix('[') {
            Some(v6) => v6
                .strip_suffix(']')
                .ok_or_else(|| "unbalanced [ in host".to_owned())?,
            None if host.contains(':') => return Err("IPv6 hosts go in brackets".to_owned()),
            None => host,
        };
        if host.contains(['/', '[', ']', ' ']) {
            return Err(format!("invalid host '{host}'"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| format!("invalid port '{port}' (0-65535)"))?;
        Ok(Some(MetricsListener {
            host: if host.is_empty() { "0.0.0.0" } else { host }.to_owned(),
            port,
            required,
        }))
    }
}

/// Request latency histogram bounds, in ms (Kafka's TotalTimeMs unit).
const LATENCY_BOUNDS_MS: [f64; 15] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
    30000.0,
];
/// API keys tracked (every key Kafka 4.1 defines is below this).
const MAX_API_KEYS: usize = 128;
/// Versions counted per API key; later ones are counted as the last.
const MAX_VERSIONS: usize = 24;

/// Kafka's BrokerTopicMetrics meters, as monotonic counts.
#[derive(Default)]
pub struct TopicCounters {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    messages_in: AtomicU64,
    produce_requests: AtomicU64,
    failed_produce_requests: AtomicU64,
    fetch_requests: AtomicU64,
    failed_fetch_requests: AtomicU64,
}

#[derive(Default)]
struct Histogram {
    /// Non-cumulative: `buckets[i]` counts observations in
    /// (bound[i-1], bound[i]]; the last one those above every bound.
    buckets: [AtomicU64; LATENCY_BOUNDS_MS.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let ms = elapsed.as_secs_f64() * 1000.0;
        let i = LATENCY_BOUNDS_MS.partition_point(|b| *b < ms);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Relaxed,
        );
    }
}

struct ApiStats {
    name: Box<str>,
    by_version: [AtomicU64; MAX_VERSIONS],
    total_time: Histogram,
}

/// Open connections and connections accepted, per listener.
#[derive(Default)]
struct ListenerConnections {
    open: AtomicI64,
    created: AtomicU64,
}

pub struct Metrics {
    /// By topic id, so a topic deleted and re-created under the same name
    /// starts from zero even when no scrape saw it gone.
    topics: RwLock<HashMap<Uuid, (String, Arc<TopicCounters>)>>,
    all_topics: TopicCounters,
    apis: Box<[ApiStats]>,
    produce_purgatory: AtomicI64,
    fetch_purgatory: AtomicI64,
    listeners: Box<[ListenerConnections]>,
    listener_names: Box<[String]>,
    connection_ids: AtomicU64,
    request_ids: AtomicU64,
    /// `runnel.slow.request.ms`; negative disables the slow-request log.
    slow_request_ms: i64,
}

impl Metrics {
    pub fn new(config: &BrokerConfig) -> Metrics {
        let apis = (0..MAX_API_KEYS)
            .map(|k| ApiStats {
                name: i16::try_from(k)
                    .ok()
                    .and_then(|k| ApiKey::try_from(k).ok())
                    .map_or_else(|| format!("Unknown{k}"), |key| format!("{key:?}"))
                    .into(),
                by_version: Default::default(),
                total_time: Histogram::default(),
            })
            .collect();
        Metrics {
            topics: RwLock::default(),
            all_topics: TopicCounters::default(),
            apis,
            produce_purgatory: AtomicI64::new(0),
            fetch_purgatory: AtomicI64::new(0),
            listeners: config
                .listeners
                .iter()
                .map(|_| Default::default())
                .collect(),
            listener_names: config
                .listeners
                .iter()
                .map(|l| l.listener_name.clone())
                .collect(),
            connection_ids: AtomicU64::new(0),
            request_ids: AtomicU64::new(0),
            slow_request_ms: config.slow_request_ms,
        }
    }

    /// The counters of the topic `id` named `name` (an existing topic:
    /// callers look it up in the metadata first, so clients cannot grow this
    /// map with made-up ids).
    pub fn topic(&self, id: Uuid, name: &str) -> Arc<TopicCounters> {
        if let Some((_, c)) = self.topics.read().get(&id) {
            return c.clone();
        }
        self.topics
            .write()
            .entry(id)
            .or_insert_with(|| (name.to_owned(), Arc::default()))
            .1
            .clone()
    }

    fn add(&self, t: &TopicCounters, field: fn(&TopicCounters) -> &AtomicU64, n: u64) {
        field(t).fetch_add(n, Relaxed);
        field(&self.all_topics).fetch_add(n, Relaxed);
    }

    /// A partition of a Produce request reached the log (Kafka's
    /// TotalProduceRequestsPerSec counts partitions, not requests).
    pub fn produce_attempted(&self, t: &TopicCounters) {
        self.add(t, |c| &c.produce_requests, 1);
    }

    /// A successful append: `bytes` as received, `records` appended (0 for
    /// a retried duplicate).
    pub fn produce_appended(&self, t: &TopicCounters, bytes: usize, records: u64) {
        self.add(t, |c| &c.bytes_in, bytes as u64);
        self.add(t, |c| &c.messages_in, records);
    }

    /// An append refused with `code`. Kafka's FailedProduceRequestsPerSec
    /// leaves out the errors that are about routing or size rather than the
    /// records (unknown partition, not leader, too large, corrupt, storage),
    /// and so does this.
    pub fn produce_failed(&self, t: &TopicCounters, code: i16) {
        use kafka_protocol::error::ResponseError as E;
        let routing = [
            E::UnknownTopicOrPartition,
            E::NotLeaderOrFollower,
            E::MessageTooLarge,
            E::RecordListTooLarge,
            E::CorruptMessage,
            E::KafkaStorageError,
        ];
        if !routing.iter().any(|e| e.code() == code) {
            self.add(t, |c| &c.failed_produce_requests, 1);
        }
    }

    /// A partition of a Fetch answered: `bytes` of records returned, and
    /// whether reading failed unexpectedly (Kafka counts only errors other
    /// than routing and offset-range ones as failed fetches).
    pub fn fetched(&self, t: &TopicCounters, bytes: usize, failed: bool) {
        self.add(t, |c| &c.fetch_requests, 1);
        if bytes > 0 {
            self.add(t, |c| &c.bytes_out, bytes as u64);
        }
        if failed {
            self.add(t, |c| &c.failed_fetch_requests, 1);
        }
    }

    /// A Produce waiting for its flush (Kafka's produce purgatory) until
    /// the guard drops.
    pub fn produce_waiting(&self) -> Waiting<'_> {
        Waiting::new(&self.produce_purgatory)
    }

    /// A Fetch long-polling for `min_bytes` (Kafka's fetch purgatory).
    pub fn fetch_waiting(&self) -> Waiting<'_> {
        Waiting::new(&self.fetch_purgatory)
    }

    fn observe(&self, key: usize, version: i16, elapsed: Duration) {
        if let Some(api) = self.apis.get(key) {
            let v = (version.max(0) as usize).min(MAX_VERSIONS - 1);
            api.by_version[v].fetch_add(1, Relaxed);
            api.total_time.observe(elapsed);
        }
    }
}

/// Counts one waiting request in a purgatory gauge while alive (also when
/// the request is dropped because its connection closed).
pub struct Waiting<'a>(&'a AtomicI64);

impl<'a> Waiting<'a> {
    fn new(gauge: &'a AtomicI64) -> Self {
        gauge.fetch_add(1, Relaxed);
        Waiting(gauge)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// One accepted client connection, counted open until dropped.
pub struct OpenConnection {
    broker: Arc<Broker>,
    listener: usize,
    id: u64,
}

impl OpenConnection {
    pub fn new(broker: &Arc<Broker>, listener: usize) -> OpenConnection {
        let m = &broker.metrics;
        if let Some(l) = m.listeners.get(listener) {
            l.open.fetch_add(1, Relaxed);
            l.created.fetch_add(1, Relaxed);
        }
        OpenConnection {
            broker: broker.clone(),
            listener,
            id: m.connection_ids.fetch_add(1, Relaxed),
        }
    }

    /// The debug-level span the connection's requests nest in.
    pub fn span(&self, peer: SocketAddr) -> tracing::Span {
        let listener = self
            .broker
            .metrics
            .listener_names
            .get(self.listener)
            .map_or("", String::as_str);
        tracing::debug_span!("connection", id = self.id, %peer, listener)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        if let Some(l) = self.broker.metrics.listeners.get(self.listener) {
            l.open.fetch_sub(1, Relaxed);
        }
    }
}

/// How much of a request's time is the client's own choice of waiting, and
/// so never makes it slow.
#[derive(Clone, Copy, Debug)]
enum Allowance {
    None,
    /// Fetch: the `max_wait_ms` a long poll may take.
    Ms(u64),
    /// JoinGroup / SyncGroup park until the other members arrive.
    Exempt,
}

/// Times one request from dispatch until its response is ready: the
/// latency histogram, the debug span the request's logs nest in, and the
/// slow-request log. The time a response then waits behind earlier ones on
/// its connection is not included (Kafka reads one request per connection at
/// a time, so its total time has no such part either).
pub struct RequestTimer {
    started: Instant,
    key: usize,
    version: i16,
    correlation_id: i32,
    allowance: Allowance,
    span: tracing::Span,
}

impl RequestTimer {
    pub fn start(ctx: &RequestContext) -> RequestTimer {
        let m = &ctx.broker.metrics;
        let key = ctx.key as i16 as usize;
        let api = m.apis.get(key).map_or("", |a| &a.name);
        let span = tracing::debug_span!(
            "request",
            id = m.request_ids.fetch_add(1, Relaxed),
            api,
            version = ctx.version,
            correlation_id = ctx.correlation_id,
            client_id = ctx.client_id.as_deref().unwrap_or(""),
        );
        RequestTimer {
            started: Instant::now(),
            key,
            version: ctx.version,
            correlation_id: ctx.correlation_id,
            allowance: match ctx.key {
                ApiKey::JoinGroup | ApiKey::SyncGroup => Allowance::Exempt,
                _ => Allowance::None,
            },
            span,
        }
    }

    /// Entered while the request is applied in dispatch.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// A Fetch's `max_wait_ms`: waiting that long is the long poll working.
    pub fn allow_wait_ms(&mut self, max_wait_ms: i32) {
        self.allowance = Allowance::Ms(max_wait_ms.max(0) as u64);
    }

    /// The response future, timed.
    pub fn watch(self, ctx: RequestContext, reply: ResponseFuture) -> ResponseFuture {
        use tracing::Instrument;
        let span = self.span.clone();
        Box::pin(
            async move {
                let result = reply.await;
                self.finish(&ctx);
                result
            }
            .instrument(span),
        )
    }

    fn finish(self, ctx: &RequestContext) {
        let elapsed = self.started.elapsed();
        let m = &ctx.broker.metrics;
        m.observe(self.key, self.version, elapsed);
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        tracing::debug!(elapsed_us = us, "request done");
        if m.slow_request_ms < 0 {
            return;
        }
        let counted_us = match self.allowance {
            Allowance::None => us,
            Allowance::Ms(allowed) => us.saturating_sub(allowed.saturating_mul(1000)),
            Allowance::Exempt => return,
        };
        if counted_us > (m.slow_request_ms as u64).saturating_mul(1000) {
            tracing::warn!(
                api = m.apis.get(self.key).map_or("", |a| &a.name),
                version = self.version,
                correlation_id = self.correlation_id,
                client_id = ctx.client_id.as_deref().unwrap_or(""),
                client_host = &*ctx.client_host,
                duration_ms = us as f64 / 1000.0,
                threshold_ms = m.slow_request_ms,
                "slow request"
            );
        }
    }
}

/// What `/health` and `/metrics` answer from: empty until the broker serves.
struct HttpState {
    serving: OnceLock<(Arc<Broker>, watch::Receiver<bool>)>,
}

/// The metrics endpoint, bound early in start-up so `/health` says
/// "starting" (503) while logs are recovered. The task stops when dropped
/// unless [`MetricsServer::serve`] handed it on.
pub struct MetricsServer {
    pub addr: SocketAddr,
    state: Arc<HttpState>,
    task: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds [`LISTENER_KEY`]'s address, if one is configured. A bind
    /// failure is an error when the key was set explicitly, else a warning.
    pub async fn bind(config: &BrokerConfig) -> Result<Option<MetricsServer>, String> {
        let Some(l) = &config.metrics_listener else {
            return Ok(None);
        };
        let listener = match TcpListener::bind((l.host.as_str(), l.port)).await {
            Ok(listener) => listener,
            Err(e) if l.required => {
                return Err(format!("binding {LISTENER_KEY} {}:{}: {e}", l.host, l.port))
            }
            Err(e) => {
                tracing::warn!(
                    "metrics endpoint not started: cannot bind {}:{} ({e}); set {LISTENER_KEY} to another address, or empty to disable it",
                    l.host,
                    l.port
                );
                return Ok(None);
            }
        };
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let state = Arc::new(HttpState {
            serving: OnceLock::new(),
        });
        let handler_state = state.clone();
        // The server's own stop signal never fires: the broker aborts the
        // task at shutdown, after draining connections.
        let (_never, stop) = watch::channel(false);
        let task = tokio::spawn(async move {
            let _keep = _never;
            http::serve(
                listener,
                move |req| {
                    let state = handler_state.clone();
                    async move { respond(&state, req).await }
                },
                stop,
            )
            .await
        });
        tracing::info!("metrics endpoint on http://{addr}/metrics");
        Ok(Some(MetricsServer {
            addr,
            state,
            task: Some(task),
        }))
    }

    /// The broker serves from now on: `/health` answers 200 until `shutdown`
    /// turns true. Returns the task for the broker to stop at shutdown.
    pub fn serve(mut self, broker: Arc<Broker>, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        let _ = self.state.serving.set((broker, shutdown));
        self.task.take().expect("task present until handed on")
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

async fn respond(state: &HttpState, req: http::Request) -> http::Response {
    let serving = state.serving.get();
    match req.path.as_str() {
        "/health" => match serving {
            None => http::Response::text(503, "starting\n"),
            Some((_, shutdown)) if *shutdown.borrow() => {
                http::Response::text(503, "shutting down\n")
            }
            Some(_) => http::Response::text(200, "ok\n"),
        },
        "/metrics" => match serving {
            None => http::Response::text(503, "starting\n"),
            Some((broker, shutdown)) => {
                let shutting_down = *shutdown.borrow();
                http::Response {
                    status: 200,
                    content_type: exposition::CONTENT_TYPE,
                    body: scrape::render(broker, shutting_down).await,
                }
            }
        },
        _ => http::Response::text(404, "not found; try /metrics or /health\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_values() {
        let ok = |s: &str| {
            MetricsListener::parse(s, true)
                .unwrap()
                .map(|l| (l.host, l.port))
        };
        assert_eq!(ok("http://0.0.0.0:9464"), Some(("0.0.0.0".into(), 9464)));
        assert_eq!(ok("HTTP://localhost:0/"), Some(("localhost".into(), 0)));
        assert_eq!(ok("127.0.0.1:80"), Some(("127.0.0.1".into(), 80)));
        assert_eq!(ok("http://:9464"), Some(("0.0.0.0".into(), 9464)));
        assert_eq!(ok("http://[::1]:9464"), Some(("::1".into(), 9464)));
        assert_eq!(ok(""), None);
        assert_eq!(ok("  "), None);
        for bad in [
            "https://a:1",
            "http://a",
            "http://a:65536",
            "http://a:x",
            "::1:80",
            "http://[::1:80",
            "http://a/b:1",
        ] {
            assert!(MetricsListener::parse(bad, true).is_err(), "{bad}");
        }
    }

    fn load(env: &[(&str, &str)], overrides: &[&str]) -> Result<BrokerConfig, String> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        BrokerConfig::load(None, env, &overrides).map_err(|e| e.to_string())
    }

    #[test]
    fn keys_come_from_every_source_with_a_default() {
        let c = load(&[], &[]).unwrap();
        assert_eq!(
            c.metrics_listener,
            Some(MetricsListener {
                host: "0.0.0.0".into(),
                port: 9464,
                required: false
            })
        );
        assert_eq!(c.slow_request_ms, 1000);
        let c = load(&[("KAFKA_RUNNEL_METRICS_LISTENER", "")], &[]).unwrap();
        assert_eq!(c.metrics_listener, None, "empty disables");
        let c = load(
            &[("KAFKA_RUNNEL_METRICS_LISTENER", "http://127.0.0.1:1234")],
            &["runnel.slow.request.ms=-1"],
        )
        .unwrap();
        assert_eq!(
            c.metrics_listener.map(|l| (l.port, l.required)),
            Some((1234, true))
        );
        assert_eq!(c.slow_request_ms, -1);
        let err = load(&[], &["runnel.metrics.listener=https://a:1"]).unwrap_err();
        assert!(err.contains("runnel.metrics.listener"), "{err}");
        assert!(load(&[], &["runnel.slow.request.ms=-2"]).is_err());
    }

    #[test]
    fn histogram_puts_each_observation_in_its_bucket() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500)); // le 0.5
        h.observe(Duration::from_micros(501)); // le 1
        h.observe(Duration::from_secs(60)); // above every bound
        let counts: Vec<u64> = h.buckets.iter().map(|b| b.load(Relaxed)).collect();
        assert_eq!(counts[0], 1);
        assert_eq!(counts[1], 1);
        assert_eq!(counts[LATENCY_BOUNDS_MS.len()], 1);
        assert_eq!(counts.iter().sum::<u64>(), 3);
        assert_eq!(h.sum_us.load(Relaxed), 60_001_001);
    }
}
