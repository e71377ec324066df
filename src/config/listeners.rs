//! `listeners` / `advertised.listeners` parsing and the checks Kafka applies
//! between them, the protocol map and `controller.listener.names`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use indexmap::IndexMap;

use super::ConfigError;

/// One `NAME://host:port` listener. `host` is stored without IPv6 brackets;
/// an empty host on a bind listener means every interface.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub listener_name: String,
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.listener_name, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.listener_name, self.host, self.port)
        }
    }
}

const PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

/// The raw (already trimmed, comma-normalised) listener-related settings.
pub(crate) struct ListenerSettings<'a> {
    pub listeners: &'a str,
    pub advertised: Option<&'a str>,
    pub protocol_map: &'a str,
    pub controller_names: Option<&'a str>,
}

/// Returns the listeners to bind and, index for index, how each one is
/// advertised.
pub(crate) fn resolve(
    s: &ListenerSettings<'_>,
    hostname: impl Fn() -> String,
) -> Result<(Vec<Endpoint>, Vec<Endpoint>), ConfigError> {
    let protocols = parse_protocol_map(s.protocol_map)?;
    // Kafka normalises listener names to upper case everywhere it compares them.
    let controllers: Vec<String> = s
        .controller_names
        .unwrap_or("")
        .split(',')
        .map(|n| n.trim().to_ascii_uppercase())
        .filter(|n| !n.is_empty())
        .collect();

    let all = parse_list("listeners", s.listeners)?;
    let mut kept = Vec::new();
    for (entry, ep) in all {
        if controllers.contains(&ep.listener_name) {
            continue;
        }
        match protocols.get(&ep.listener_name).map(String::as_str) {
            Some("PLAINTEXT") => kept.push(ep),
            Some(other) => {
                return Err(ConfigError::Unsupported {
                    key: "listeners".into(),
                    value: entry,
                    reason: format!("{other} listeners are not supported yet"),
                })
            }
            None => {
                return Err(ConfigError::InvalidValue {
                    key: "listeners".into(),
                    value: entry,
                    reason: format!(
                        "listener.security.protocol.map has no entry for listener {}",
                        ep.listener_name
                    ),
                })
            }
        }
    }
    if kept.is_empty() {
        return Err(ConfigError::InvalidValue {
            key: "listeners".into(),
            value: s.listeners.into(),
            reason: "no broker listener remains once controller.listener.names are removed".into(),
        });
    }

    let mut advertised_by_name = IndexMap::new();
    for (entry, ep) in parse_list("advertised.listeners", s.advertised.unwrap_or(""))? {
        if controllers.contains(&ep.listener_name) {
            continue;
        }
        let invalid = |reason: String| ConfigError::InvalidValue {
            key: "advertised.listeners".into(),
            value: entry.clone(),
            reason,
        };
        if !kept.iter().any(|l| l.listener_name == ep.listener_name) {
            return Err(invalid(format!(
                "listener {} is not one of the broker's listeners",
                ep.listener_name
            )));
        }
        if is_wildcard(&ep.host) {
            return Err(invalid(
                "cannot advertise the non-routable meta-address; use a routable host".into(),
            ));
        }
        advertised_by_name.insert(ep.listener_name.clone(), ep);
    }

    let advertised = kept
        .iter()
        .map(|l| {
            let mut ep = advertised_by_name
                .get(&l.listener_name)
                .cloned()
                .unwrap_or_else(|| l.clone());
            // A wildcard bind address is useless to a client; Kafka publishes
            // the machine's name in its place.
            if ep.host.is_empty() || is_wildcard(&ep.host) {
                ep.host = hostname();
            }
            ep
        })
        .collect();
    Ok((kept, advertised))
}

fn is_wildcard(host: &str) -> bool {
    host == "0.0.0.0" || host == "::"
}

/// Parses a comma list of listeners, keeping each entry's text for errors.
fn parse_list(key: &str, list: &str) -> Result<Vec<(String, Endpoint)>, ConfigError> {
    let mut out: Vec<(String, Endpoint)> = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let invalid = |reason: &str| ConfigError::InvalidValue {
            key: key.into(),
            value: entry.into(),
            reason: reason.into(),
        };
        let ep = parse_endpoint(entry).map_err(|r| invalid(&r))?;
        if out.iter().any(|(_, e)| e.listener_name == ep.listener_name) {
            return Err(invalid(&format!(
                "listener name {} is used more than once",
                ep.listener_name
            )));
        }
        out.push((entry.to_owned(), ep));
    }
    Ok(out)
}

fn parse_endpoint(entry: &str) -> Result<Endpoint, String> {
    let (name, host_port) = entry.split_once("://").ok_or("expected NAME://host:port")?;
    if name.is_empty() {
        return Err("listener name is empty".into());
    }
    let (host, port) = if let Some(rest) = host_port.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed '[' in host")?;
        let port = after.strip_prefix(':').ok_or("expected :port after ']'")?;
        (host, port)
    } else {
        let (host, port) = host_port.rsplit_once(':').ok_or("expected host:port")?;
        if host.contains(':') {
            return Err("IPv6 addresses must be written in brackets, e.g. [::1]:9092".into());
        }
        (host, port)
    };
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '%' | ':'))
    {
        return Err(format!("'{host}' is not a valid host"));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("'{port}' is not a port number (0-65535)"))?;
    Ok(Endpoint {
        listener_name: name.to_ascii_uppercase(),
        host: host.to_owned(),
        port,
    })
}

fn parse_protocol_map(map: &str) -> Result<IndexMap<String, String>, ConfigError> {
    let mut out = IndexMap::new();
    for entry in map.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let invalid = |reason: String| ConfigError::InvalidValue {
            key: "listener.security.protocol.map".into(),
            value: entry.into(),
            reason,
        };
        let (name, protocol) = entry
            .split_once(':')
            .ok_or_else(|| invalid("expected LISTENER_NAME:PROTOCOL".into()))?;
        let name = name.trim().to_ascii_uppercase();
        let protocol = protocol.trim().to_ascii_uppercase();
        if name.is_empty() {
            return Err(invalid("listener name is empty".into()));
        }
        if !PROTOCOLS.contains(&protocol.as_str()) {
            return Err(invalid(format!(
                "unknown security protocol; expected one of {}",
                PROTOCOLS.join(", ")
            )));
        }
        if out.insert(name.clone(), protocol).is_some() {
            return Err(invalid(format!("listener {name} is mapped more than once")));
        }
    }
    Ok(out)
}

/// The socket address a listener binds. An empty host means every interface.
/// Names are looked up without glibc's NSS where possible, because a static
/// binary in a `FROM scratch` image has no NSS modules: IP literals and
/// `localhost` directly, then `/etc/hosts` (which Docker writes for the
/// container's own name), and only then the system resolver.
pub async fn bind_addr(ep: &Endpoint) -> std::io::Result<SocketAddr> {
    if let Some(ip) = resolve_locally(&ep.host) {
        return Ok(SocketAddr::new(ip, ep.port));
    }
    tokio::net::lookup_host((ep.host.as_str(), ep.port))
        .await?
        .next()
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("host '{}' has no address", ep.host),
            )
        })
}

/// A host's address without asking a name server: IP literals, `localhost`,
/// the empty wildcard, then `/etc/hosts`.
pub(crate) fn resolve_locally(host: &str) -> Option<IpAddr> {
    literal_host(host).or_else(|| {
        let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        lookup_hosts_file(&hosts, host)
    })
}

/// Hosts that need no lookup: empty (the wildcard), IP literals, `localhost`.
fn literal_host(host: &str) -> Option<IpAddr> {
    if host.is_empty() {
        return Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    host.parse().ok()
}

/// The first address `/etc/hosts` text gives `host` (names are
/// case-insensitive; `#` starts a comment).
fn lookup_hosts_file(text: &str, host: &str) -> Option<IpAddr> {
    text.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let ip: IpAddr = fields.next()?.parse().ok()?;
        fields
            .any(|name| name.eq_ignore_ascii_case(host))
            .then_some(ip)
    })
}

/// Logs, once at start-up, the controller listeners that are not bound: a
/// single Runnel node is its own controller, and nothing but Kafka's own
/// controller clients would connect to them.
pub fn log_skipped_listeners(config: &super::BrokerConfig) {
    let keys = [
        "listeners".to_owned(),
        "controller.listener.names".to_owned(),
    ];
    let described = config.describe(Some(&keys), false);
    let value = |name: &str| {
        described
            .iter()
            .find(|d| d.name == name)
            .and_then(|d| d.value.clone())
            .unwrap_or_default()
    };
    let controllers = value("controller.listener.names");
    for entry in skipped_controller_listeners(&value("listeners"), &controllers) {
        tracing::info!(
            listener = %entry,
            "not binding controller listener: a single Runnel node is its own controller"
        );
    }
}

/// The entries of `listeners` whose name is one of `controller_names`.
fn skipped_controller_listeners(listeners: &str, controller_names: &str) -> Vec<String> {
    let controllers: Vec<String> = controller_names
        .split(',')
        .map(|n| n.trim().to_ascii_uppercase())
        .filter(|n| !n.is_empty())
        .collect();
    listeners
        .split(',')
        .map(str::trim)
        .filter(|e| {
            e.split_once("://")
                .is_some_and(|(name, _)| controllers.contains(&name.to_ascii_uppercase()))
        })
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;

    fn ep(name: &str, host: &str, port: u16) -> Endpoint {
        Endpoint {
            listener_name: name.into(),
            host: host.into(),
            port,
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The environment of the single-node example in Kafka's docker docs
    /// (docker/examples/.../single-node/plaintext), as docker/compose.yaml has it.
    const KAFKA_DOCS_SINGLE_NODE: &[(&str, &str)] = &[
        ("KAFKA_NODE_ID", "1"),
        (
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
            "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT",
        ),
        (
            "KAFKA_ADVERTISED_LISTENERS",
            "PLAINTEXT_HOST://localhost:9092,PLAINTEXT://broker:19092",
        ),
        ("KAFKA_PROCESS_ROLES", "broker,controller"),
        ("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@broker:29093"),
        (
            "KAFKA_LISTENERS",
            "CONTROLLER://:29093,PLAINTEXT_HOST://:9092,PLAINTEXT://:19092",
        ),
        ("KAFKA_INTER_BROKER_LISTENER_NAME", "PLAINTEXT"),
        ("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER"),
        ("CLUSTER_ID", "4L6g3nShT-eMCtK--X86sw"),
        ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1"),
        ("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0"),
        ("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1"),
        ("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1"),
        (
            "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR",
            "1",
        ),
        ("KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR", "1"),
        ("KAFKA_LOG_DIRS", "/tmp/kraft-combined-logs"),
    ];

    #[test]
    fn kafka_docs_single_node_binds_every_broker_listener() {
        let c = BrokerConfig::load(None, env(KAFKA_DOCS_SINGLE_NODE), &[]).unwrap();
        // In `listeners` order, the controller listener left out.
        assert_eq!(
            c.listeners,
            vec![ep("PLAINTEXT_HOST", "", 9092), ep("PLAINTEXT", "", 19092)]
        );
        // Index for index: advertised.listeners is matched by name, not order.
        assert_eq!(
            c.advertised_listeners,
            vec![
                ep("PLAINTEXT_HOST", "localhost", 9092),
                ep("PLAINTEXT", "broker", 19092)
            ]
        );
        assert_eq!(c.node_id, 1);
        assert_eq!(
            c.log_dir,
            std::path::PathBuf::from("/tmp/kraft-combined-logs")
        );
        assert_eq!(c.group.initial_rebalance_delay_ms, 0);
        assert_eq!(
            c.cluster_id_override.as_deref(),
            Some("4L6g3nShT-eMCtK--X86sw")
        );
        assert_eq!(
            skipped_controller_listeners(
                "CONTROLLER://:29093,PLAINTEXT_HOST://:9092,PLAINTEXT://:19092",
                "CONTROLLER"
            ),
            vec!["CONTROLLER://:29093".to_owned()]
        );
    }

    /// docker/Dockerfile's ENV: the apache/kafka image's configureDefaults.
    #[test]
    fn image_defaults_load() {
        let c = BrokerConfig::load(
            None,
            env(&[
                ("CLUSTER_ID", "5L6g3nShT-eMCtK--X86sw"),
                ("KAFKA_NODE_ID", "1"),
                (
                    "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
                    "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT",
                ),
                (
                    "KAFKA_LISTENERS",
                    "PLAINTEXT://localhost:29092,CONTROLLER://localhost:29093,PLAINTEXT_HOST://0.0.0.0:9092",
                ),
                (
                    "KAFKA_ADVERTISED_LISTENERS",
                    "PLAINTEXT://localhost:29092,PLAINTEXT_HOST://localhost:9092",
                ),
                ("KAFKA_PROCESS_ROLES", "broker,controller"),
                ("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:29093"),
                ("KAFKA_INTER_BROKER_LISTENER_NAME", "PLAINTEXT"),
                ("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER"),
                ("KAFKA_LOG_DIRS", "/tmp/kraft-combined-logs"),
            ]),
            &[],
        )
        .unwrap();
        assert_eq!(
            c.listeners,
            vec![
                ep("PLAINTEXT", "localhost", 29092),
                ep("PLAINTEXT_HOST", "0.0.0.0", 9092)
            ]
        );
        assert_eq!(
            c.advertised_listeners,
            vec![
                ep("PLAINTEXT", "localhost", 29092),
                ep("PLAINTEXT_HOST", "localhost", 9092)
            ]
        );
    }

    #[test]
    fn a_listener_missing_from_advertised_is_published_as_bound() {
        let s = ListenerSettings {
            listeners: "A://:9092,B://10.0.0.5:9093",
            advertised: Some("A://a.example:1"),
            protocol_map: "A:PLAINTEXT,B:PLAINTEXT",
            controller_names: None,
        };
        let (bound, advertised) = resolve(&s, || "myhost".into()).unwrap();
        assert_eq!(bound.len(), 2);
        assert_eq!(
            advertised,
            vec![ep("A", "a.example", 1), ep("B", "10.0.0.5", 9093)]
        );
        // No advertised.listeners at all: wildcard hosts become the hostname.
        let s = ListenerSettings {
            advertised: None,
            ..s
        };
        let (_, advertised) = resolve(&s, || "myhost".into()).unwrap();
        assert_eq!(
            advertised,
            vec![ep("A", "myhost", 9092), ep("B", "10.0.0.5", 9093)]
        );
    }

    #[test]
    fn tls_and_sasl_broker_listeners_are_a_startup_error() {
        for (map, protocol) in [
            ("INTERNAL:PLAINTEXT,EXTERNAL:SSL", "SSL"),
            (
                "INTERNAL:PLAINTEXT,EXTERNAL:SASL_PLAINTEXT",
                "SASL_PLAINTEXT",
            ),
            ("INTERNAL:PLAINTEXT,EXTERNAL:SASL_SSL", "SASL_SSL"),
        ] {
            let s = ListenerSettings {
                listeners: "INTERNAL://:9092,EXTERNAL://:9093",
                advertised: None,
                protocol_map: map,
                controller_names: None,
            };
            let err = resolve(&s, || "h".into()).unwrap_err().to_string();
            assert!(
                err.contains(&format!("{protocol} listeners are not supported")),
                "{map}: {err}"
            );
            assert!(err.contains("EXTERNAL://:9093"), "{map}: {err}");
        }
        // A controller listener is never bound, so its protocol does not matter.
        let s = ListenerSettings {
            listeners: "INTERNAL://:9092,CONTROLLER://:9093",
            advertised: None,
            protocol_map: "INTERNAL:PLAINTEXT,CONTROLLER:SSL",
            controller_names: Some("controller"),
        };
        assert_eq!(resolve(&s, || "h".into()).unwrap().0.len(), 1);
    }

    #[test]
    fn hosts_that_need_no_resolver() {
        assert_eq!(literal_host(""), Some(Ipv4Addr::UNSPECIFIED.into()));
        assert_eq!(literal_host("LocalHost"), Some(Ipv4Addr::LOCALHOST.into()));
        assert_eq!(literal_host("10.1.2.3"), Some("10.1.2.3".parse().unwrap()));
        assert_eq!(literal_host("::1"), Some("::1".parse().unwrap()));
        assert_eq!(literal_host("broker"), None);
    }

    #[test]
    fn etc_hosts_lookup() {
        let hosts = "127.0.0.1\tlocalhost\n\
                     # 10.9.9.9 broker\n\
                     ::1 localhost ip6-localhost\n\
                     172.18.0.2\tBroker  broker.example # compose\n\
                     not-an-ip other\n";
        assert_eq!(
            lookup_hosts_file(hosts, "broker"),
            Some("172.18.0.2".parse().unwrap())
        );
        assert_eq!(
            lookup_hosts_file(hosts, "broker.example"),
            Some("172.18.0.2".parse().unwrap())
        );
        assert_eq!(
            lookup_hosts_file(hosts, "ip6-localhost"),
            Some("::1".parse().unwrap())
        );
        assert_eq!(lookup_hosts_file(hosts, "other"), None);
        assert_eq!(lookup_hosts_file(hosts, "compose"), None);
    }

    #[tokio::test]
    async fn bind_addr_of_common_hosts() {
        let addr = bind_addr(&ep("PLAINTEXT", "", 9092)).await.unwrap();
        assert_eq!(addr, "0.0.0.0:9092".parse().unwrap());
        let addr = bind_addr(&ep("PLAINTEXT", "localhost", 1)).await.unwrap();
        assert_eq!(addr, "127.0.0.1:1".parse().unwrap());
        let addr = bind_addr(&ep("PLAINTEXT", "fe80::1", 2)).await.unwrap();
        assert_eq!(addr, "[fe80::1]:2".parse().unwrap());
    }
}
