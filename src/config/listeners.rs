//! `listeners` / `advertised.listeners` parsing and the checks Kafka applies
//! between them, the protocol map and `controller.listener.names`.

use std::fmt;

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
