//! The metadata log's record format: one record per line,
//! `<crc32c of the rest, 8 hex digits>\t<kind>\t<fields, tab-separated>\n`.
//! Kinds: `topic <name> <uuid> <partitions>`, `config <uuid> <key> <value|->`
//! (`-` removes the override; values are percent-encoded), `delete <uuid>`,
//! `producer-ids <block end>`, `broker-config <node id or empty> <key> <=value|->`
//! (dynamic broker configs; empty is the cluster default), `partitions <uuid> <count>` (CreatePartitions),
//! `quota <entity> <key> <=value|->` (client quotas; the entity is
//! `type=name` or bare `type` for a default, `;`-separated). A line whose CRC or shape is wrong ends the
//! replay: it is a torn write from a crash and is truncated away.

use uuid::Uuid;

// No `Eq`: quota values are `f64`.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataRecord {
    Topic {
        name: String,
        id: Uuid,
        partitions: i32,
    },
    Config {
        id: Uuid,
        key: String,
        value: Option<String>,
    },
    DeleteTopic {
        id: Uuid,
    },
    ProducerIds {
        block_end: i64,
    },
    /// A dynamic broker config set (`Some`) or removed (`None`); `resource`
    /// is the node id, or empty for the cluster-wide default.
    BrokerConfig {
        resource: String,
        key: String,
        value: Option<String>,
    },
    /// CreatePartitions: the topic's new (larger) partition count.
    Partitions {
        id: Uuid,
        partitions: i32,
    },
    /// A client quota set (`Some`) or removed (`None`) for one entity.
    Quota {
        entity: QuotaEntity,
        key: String,
        value: Option<f64>,
    },
}

/// A client-quota entity: (entity type, name) pairs sorted by type; a `None`
/// name is the type's default entity.
pub type QuotaEntity = Vec<(String, Option<String>)>;

/// `type=name` or bare `type` (the default entity), percent-encoded, joined
/// by `;` (which percent-encoding never leaves in a part).
fn encode_entity(entity: &QuotaEntity) -> String {
    entity
        .iter()
        .map(|(t, n)| match n {
            Some(n) => format!("{}={}", percent_encode(t), percent_encode(n)),
            None => percent_encode(t),
        })
        .collect::<Vec<_>>()
        .join(";")
}

fn decode_entity(s: &str) -> Option<QuotaEntity> {
    s.split(';')
        .map(|part| match part.split_once('=') {
            Some((t, n)) => Some((percent_decode(t)?, Some(percent_decode(n)?))),
            None => Some((percent_decode(part)?, None)),
        })
        .collect()
}

impl MetadataRecord {
    pub fn encode_line(&self) -> String {
        let body = match self {
            MetadataRecord::Topic {
                name,
                id,
                partitions,
            } => format!("topic\t{name}\t{id}\t{partitions}"),
            MetadataRecord::Config { id, key, value } => format!(
                "config\t{id}\t{}\t{}",
                percent_encode(key),
                value
                    .as_deref()
                    .map_or("-".to_string(), |v| format!("={}", percent_encode(v)))
            ),
            MetadataRecord::DeleteTopic { id } => format!("delete\t{id}"),
            MetadataRecord::ProducerIds { block_end } => format!("producer-ids\t{block_end}"),
            MetadataRecord::Partitions { id, partitions } => {
                format!("partitions\t{id}\t{partitions}")
            }
            MetadataRecord::BrokerConfig {
                resource,
                key,
                value,
            } => format!(
                "broker-config\t{}\t{}\t{}",
                percent_encode(resource),
                percent_encode(key),
                value
                    .as_deref()
                    .map_or("-".to_string(), |v| format!("={}", percent_encode(v)))
            ),
            MetadataRecord::Quota { entity, key, value } => format!(
                "quota\t{}\t{}\t{}",
                encode_entity(entity),
                percent_encode(key),
                value.map_or("-".to_string(), |v| format!("={v}"))
            ),
        };
        format!("{:08x}\t{body}\n", crc32c::crc32c(body.as_bytes()))
    }

    fn decode_body(body: &str) -> Option<MetadataRecord> {
        let fields: Vec<&str> = body.split('\t').collect();
        match fields.as_slice() {
            ["topic", name, id, partitions] => Some(MetadataRecord::Topic {
                name: name.to_string(),
                id: id.parse().ok()?,
                partitions: partitions.parse().ok()?,
            }),
            ["config", id, key, value] => Some(MetadataRecord::Config {
                id: id.parse().ok()?,
                key: percent_decode(key)?,
                value: match *value {
                    "-" => None,
                    v => Some(percent_decode(v.strip_prefix('=')?)?),
                },
            }),
            ["delete", id] => Some(MetadataRecord::DeleteTopic {
                id: id.parse().ok()?,
            }),
            ["producer-ids", end] => Some(MetadataRecord::ProducerIds {
                block_end: end.parse().ok()?,
            }),
            ["broker-config", resource, key, value] => Some(MetadataRecord::BrokerConfig {
                resource: percent_decode(resource)?,
                key: percent_decode(key)?,
                value: match *value {
                    "-" => None,
                    v => Some(percent_decode(v.strip_prefix('=')?)?),
                },
            }),
            ["partitions", id, partitions] => Some(MetadataRecord::Partitions {
                id: id.parse().ok()?,
                partitions: partitions.parse().ok()?,
            }),
            ["quota", entity, key, value] => Some(MetadataRecord::Quota {
                entity: decode_entity(entity)?,
                key: percent_decode(key)?,
                value: match *value {
                    "-" => None,
                    v => Some(v.strip_prefix('=')?.parse().ok()?),
                },
            }),
            _ => None,
        }
    }
}

/// The lines of records that must survive a crash together (one admin
/// request): more than one is preceded by a `batch <count>` line, and replay
/// takes either all of them or, when a crash cut the batch short, none.
pub fn encode_batch(records: &[MetadataRecord]) -> String {
    let mut out = String::new();
    if records.len() > 1 {
        let body = format!("batch\t{}", records.len());
        out.push_str(&format!(
            "{:08x}\t{body}\n",
            crc32c::crc32c(body.as_bytes())
        ));
    }
    for record in records {
        out.push_str(&record.encode_line());
    }
    out
}

/// Decodes records up to the first bad line or incomplete batch; returns
/// them and the length of the valid prefix.
pub fn replay(text: &[u8]) -> (Vec<MetadataRecord>, usize) {
    let next_line = |pos: usize| {
        let nl = text[pos..].iter().position(|&b| b == b'\n')?;
        Some((&text[pos..pos + nl], pos + nl + 1))
    };
    let mut records = Vec::new();
    let mut pos = 0;
    while let Some((line, after)) = next_line(pos) {
        if let Some(count) = decode_batch_header(line) {
            let mut batch = Vec::new();
            let mut end = after;
            while batch.len() < count {
                let Some(record) = next_line(end).and_then(|(line, next)| {
                    end = next;
                    decode_line(line)
                }) else {
                    break;
                };
                batch.push(record);
            }
            if batch.len() < count {
                break;
            }
            records.extend(batch);
            pos = end;
            continue;
        }
        let Some(record) = decode_line(line) else {
            break;
        };
        records.push(record);
        pos = after;
    }
    (records, pos)
}

fn decode_batch_header(line: &[u8]) -> Option<usize> {
    let line = std::str::from_utf8(line).ok()?;
    let (crc, body) = line.split_once('\t')?;
    if crc.len() != 8 || u32::from_str_radix(crc, 16).ok()? != crc32c::crc32c(body.as_bytes()) {
        return None;
    }
    match body.split('\t').collect::<Vec<_>>()[..] {
        ["batch", count] => count.parse().ok().filter(|&n| n > 0),
        _ => None,
    }
}

fn decode_line(line: &[u8]) -> Option<MetadataRecord> {
    let line = std::str::from_utf8(line).ok()?;
    let (crc, body) = line.split_once('\t')?;
    if u32::from_str_radix(crc, 16).ok()? != crc32c::crc32c(body.as_bytes()) || crc.len() != 8 {
        return None;
    }
    MetadataRecord::decode_body(body)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b".,_:/-".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<MetadataRecord> {
        let id = Uuid::new_v4();
        vec![
            MetadataRecord::Topic {
                name: "t.1-x_y".into(),
                id,
                partitions: 6,
            },
            MetadataRecord::Config {
                id,
                key: "cleanup.policy".into(),
                value: Some("compact,delete with\ttab%=\u{e9}".into()),
            },
            MetadataRecord::Config {
                id,
                key: "retention.ms".into(),
                value: Some(String::new()),
            },
            MetadataRecord::Config {
                id,
                key: "retention.ms".into(),
                value: None,
            },
            MetadataRecord::DeleteTopic { id },
            MetadataRecord::ProducerIds { block_end: 3000 },
            MetadataRecord::Partitions { id, partitions: 9 },
            MetadataRecord::BrokerConfig {
                resource: String::new(),
                key: "log.retention.ms".into(),
                value: Some("60000".into()),
            },
            MetadataRecord::BrokerConfig {
                resource: "1".into(),
                key: "log.cleanup.policy".into(),
                value: Some("compact,delete".into()),
            },
            MetadataRecord::BrokerConfig {
                resource: "1".into(),
                key: "log.cleanup.policy".into(),
                value: None,
            },
            MetadataRecord::Quota {
                entity: vec![
                    ("client-id".into(), None),
                    ("user".into(), Some("a=b;c%\t".into())),
                ],
                key: "producer_byte_rate".into(),
                value: Some(1024.5),
            },
            MetadataRecord::Quota {
                entity: vec![("ip".into(), Some(String::new()))],
                key: "connection_creation_rate".into(),
                value: None,
            },
        ]
    }

    #[test]
    fn round_trip() {
        let recs = samples();
        let text: String = recs.iter().map(MetadataRecord::encode_line).collect();
        let (back, len) = replay(text.as_bytes());
        assert_eq!(back, recs);
        assert_eq!(len, text.len());
    }

    #[test]
    fn replay_stops_at_any_truncation_or_corruption() {
        let text: String = samples().iter().map(MetadataRecord::encode_line).collect();
        let ends: Vec<usize> = text.match_indices('\n').map(|(i, _)| i + 1).collect();
        for cut in 0..text.len() {
            let (recs, len) = replay(&text.as_bytes()[..cut]);
            let whole = ends.iter().filter(|&&e| e <= cut).count();
            assert_eq!(recs.len(), whole);
            assert_eq!(len, if whole == 0 { 0 } else { ends[whole - 1] });
        }
        for i in 0..text.len() {
            let mut bytes = text.clone().into_bytes();
            if bytes[i] == b'\n' {
                continue;
            }
            bytes[i] ^= 0x01;
            let (recs, _) = replay(&bytes);
            let line = ends.iter().filter(|&&e| e <= i).count();
            assert_eq!(recs.len(), line, "flip at {i}");
        }
    }

    /// A batch (one admin request's records) replays whole or not at all,
    /// wherever a crash cuts it or a bit flips in it.
    #[test]
    fn a_batch_replays_whole_or_not_at_all() {
        let before = samples()[..1].to_vec();
        let batch = samples()[1..].to_vec();
        let after = samples()[..1].to_vec();
        let head = encode_batch(&before);
        let body = encode_batch(&batch);
        let text = format!("{head}{body}{}", encode_batch(&after));
        assert!(body.starts_with(&format!(
            "{:08x}\tbatch\t",
            crc32c::crc32c(format!("batch\t{}", batch.len()).as_bytes())
        )));
        let (all, len) = replay(text.as_bytes());
        assert_eq!(all, [before.clone(), batch.clone(), after].concat());
        assert_eq!(len, text.len());
        let batch_end = head.len() + body.len();
        for cut in head.len()..batch_end {
            let (recs, len) = replay(&text.as_bytes()[..cut]);
            assert_eq!((recs, len), (before.clone(), head.len()), "cut at {cut}");
        }
        for i in head.len()..batch_end {
            let mut bytes = text.clone().into_bytes();
            if bytes[i] == b'\n' {
                continue;
            }
            bytes[i] ^= 0x01;
            let (recs, len) = replay(&bytes);
            assert_eq!((recs, len), (before.clone(), head.len()), "flip at {i}");
        }
    }
}
