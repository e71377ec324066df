//! Turning the three outside sources (a `.properties` file, the environment,
//! `--override` flags) into plain `key = value` pairs.

use super::ConfigError;

/// Parses Java `.properties` text the way `java.util.Properties.load` does,
/// except that values are trimmed at both ends because Kafka trims them too.
pub(crate) fn parse_properties(text: &str) -> Vec<(String, String)> {
    // Java treats "\r\n", "\n" and a lone "\r" as line ends; folding "\r\n"
    // first stops it from looking like two lines and ending a continuation.
    let text = text.replace("\r\n", "\n");
    let mut out = Vec::new();
    let mut logical = String::new();
    let mut continuing = false;
    for natural in text.split(['\n', '\r']) {
        let line = natural.trim_start_matches([' ', '\t', '\x0c']);
        if !continuing && (line.is_empty() || line.starts_with(['#', '!'])) {
            continue;
        }
        let trailing = line.len() - line.trim_end_matches('\\').len();
        if trailing % 2 == 1 {
            logical.push_str(&line[..line.len() - 1]);
            continuing = true;
            continue;
        }
        logical.push_str(line);
        continuing = false;
        out.push(split_key_value(&logical));
        logical.clear();
    }
    if continuing {
        out.push(split_key_value(&logical));
    }
    out
}

/// Splits a logical line at the first unescaped `=`, `:` or whitespace; a
/// whitespace separator may be followed by one `=` or `:`.
fn split_key_value(line: &str) -> (String, String) {
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\x0c');
    let mut key_end = line.len();
    let mut value_start = line.len();
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '=' || c == ':' || is_space(c) {
            key_end = i;
            let mut rest = line[i..].trim_start_matches(is_space);
            if is_space(c) {
                if let Some(r) = rest.strip_prefix(['=', ':']) {
                    rest = r;
                }
            } else {
                rest = &rest[1..];
            }
            value_start = line.len() - rest.len();
            break;
        }
    }
    let key = unescape(&line[..key_end]);
    let value = unescape(&line[value_start..]);
    (key.trim().to_owned(), value.trim().to_owned())
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.clone().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) if hex.len() == 4 => {
                        out.push(ch);
                        chars.nth(3);
                    }
                    // Java throws on a malformed \u escape; keeping the text
                    // lets the value's own validation name the key instead.
                    _ => out.push('u'),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// What an environment variable means to us.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EnvVar {
    Config(String),
    ClusterId,
    Ignored,
}

/// Variables the `apache/kafka` image reads for itself rather than turning
/// into `server.properties` lines.
const IMAGE_VARS: &[&str] = &[
    "KAFKA_VERSION",
    "KAFKA_HOME",
    "KAFKA_OPTS",
    "KAFKA_HEAP_OPTS",
    "KAFKA_JVM_PERFORMANCE_OPTS",
    "KAFKA_GC_LOG_OPTS",
    "KAFKA_LOG4J_OPTS",
    "KAFKA_LOG4J_LOGGERS",
    "KAFKA_LOG4J_ROOT_LOGLEVEL",
    "KAFKA_JMX_OPTS",
    "KAFKA_JMX_PORT",
    "KAFKA_DEBUG",
    "KAFKA_TOOLS_LOG4J_LOGLEVEL",
];

fn is_image_var(name: &str) -> bool {
    IMAGE_VARS.contains(&name) || name.starts_with("KAFKA_JMX_")
}

/// One log line for a variable the official image would consume for the JVM,
/// log4j or JMX: it means nothing to Runnel, and saying so beats silence.
/// Other variables (PATH, HOME, ...) are not mentioned.
pub(crate) fn log_ignored_env(name: &str) {
    if is_image_var(name) {
        tracing::info!(
            variable = name,
            "environment variable ignored: it configures the JVM, log4j or JMX of the apache/kafka image"
        );
    }
}

/// Maps a variable name the way the official image does: strip `KAFKA_`,
/// lowercase, then `___` → `-`, `__` → `_`, `_` → `.`.
pub(crate) fn classify_env(name: &str) -> EnvVar {
    if name == "CLUSTER_ID" || name == "KAFKA_CLUSTER_ID" {
        return EnvVar::ClusterId;
    }
    let Some(rest) = name.strip_prefix("KAFKA_") else {
        return EnvVar::Ignored;
    };
    if rest.is_empty() || is_image_var(name) {
        return EnvVar::Ignored;
    }
    let lower = rest.to_ascii_lowercase();
    let mut key = String::with_capacity(lower.len());
    let mut chars = lower.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '_' {
            key.push(c);
            continue;
        }
        let mut run = 1;
        while chars.next_if_eq(&'_').is_some() {
            run += 1;
        }
        // Replacing the longest pattern first, left to right, turns a run of
        // n underscores into n/3 dashes followed by whatever two or one
        // underscore(s) remain; doing it per run needs no placeholders.
        key.extend(std::iter::repeat_n('-', run / 3));
        match run % 3 {
            2 => key.push('_'),
            1 => key.push('.'),
            _ => {}
        }
    }
    EnvVar::Config(key)
}

/// Splits one `--override key=value` argument.
pub(crate) fn parse_override(arg: &str) -> Result<(String, String), ConfigError> {
    match arg.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(ConfigError::MalformedOverride {
            arg: arg.to_owned(),
        }),
    }
}

#[cfg(test)]
mod env_tests {
    use super::*;

    #[test]
    fn kafka_image_variable_names() {
        for (var, key) in [
            ("KAFKA_LISTENERS", "listeners"),
            ("KAFKA_ADVERTISED_LISTENERS", "advertised.listeners"),
            (
                "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
                "listener.security.protocol.map",
            ),
            ("KAFKA_PROCESS_ROLES", "process.roles"),
            ("KAFKA_CONTROLLER_QUORUM_VOTERS", "controller.quorum.voters"),
            (
                "KAFKA_CONTROLLER_LISTENER_NAMES",
                "controller.listener.names",
            ),
            (
                "KAFKA_INTER_BROKER_LISTENER_NAME",
                "inter.broker.listener.name",
            ),
            ("KAFKA_NUM_PARTITIONS", "num.partitions"),
            (
                "KAFKA_AUTO_CREATE_TOPICS_ENABLE",
                "auto.create.topics.enable",
            ),
            (
                "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
                "offsets.topic.replication.factor",
            ),
            (
                "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                "transaction.state.log.replication.factor",
            ),
            (
                "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS",
                "group.initial.rebalance.delay.ms",
            ),
            // Lower case is kept as is; only the prefix must be upper case.
            ("KAFKA_log_dirs", "log.dirs"),
            // The image's escapes: `__` is `_`, `___` is `-`.
            (
                "KAFKA_LISTENER_NAME_PLAINTEXT__HOST_SASL_ENABLED___MECHANISMS",
                "listener.name.plaintext_host.sasl.enabled-mechanisms",
            ),
            // The prefix takes one underscore of a run that follows it.
            ("KAFKA___LEADING", "_leading"),
            ("KAFKA____LEADING", "-leading"),
            ("KAFKA_TRAILING__", "trailing_"),
        ] {
            assert_eq!(classify_env(var), EnvVar::Config(key.into()), "{var}");
        }
    }

    #[test]
    fn jvm_log4j_and_jmx_variables_are_not_configs() {
        for var in [
            "KAFKA_HEAP_OPTS",
            "KAFKA_OPTS",
            "KAFKA_JVM_PERFORMANCE_OPTS",
            "KAFKA_GC_LOG_OPTS",
            "KAFKA_LOG4J_OPTS",
            "KAFKA_LOG4J_LOGGERS",
            "KAFKA_JMX_OPTS",
            "KAFKA_JMX_PORT",
            "KAFKA_JMX_HOSTNAME",
            "KAFKA_DEBUG",
        ] {
            assert_eq!(classify_env(var), EnvVar::Ignored, "{var}");
            assert!(is_image_var(var), "{var}");
        }
        // Not the image's: no log line for these.
        for var in ["PATH", "HOSTNAME", "KAFKA_LOG_DIRS"] {
            assert!(!is_image_var(var), "{var}");
        }
    }

    #[test]
    fn env_sits_between_file_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.properties");
        std::fs::write(&file, "num.partitions=2\nauto.create.topics.enable=true\n").unwrap();
        let env = vec![
            ("KAFKA_NUM_PARTITIONS".to_owned(), "3".to_owned()),
            (
                "KAFKA_AUTO_CREATE_TOPICS_ENABLE".to_owned(),
                "false".to_owned(),
            ),
            ("KAFKA_HEAP_OPTS".to_owned(), "-Xmx1G".to_owned()),
            ("KAFKA_JMX_PORT".to_owned(), "not-a-port".to_owned()),
        ];
        let c = crate::config::BrokerConfig::load(
            Some(&file),
            env.clone(),
            &["num.partitions=4".to_owned()],
        )
        .unwrap();
        assert_eq!(c.num_partitions, 4);
        assert!(!c.auto_create_topics_enable);
        let c = crate::config::BrokerConfig::load(Some(&file), env, &[]).unwrap();
        assert_eq!(c.num_partitions, 3);
    }
}
