//! The metadata log's record format: one record per line,
//! `<crc32c of the rest, 8 hex digits>\t<kind>\t<fields, tab-separated>\n`.
//! Kinds: `topic <name> <uuid> <partitions>`, `config <uuid> <key> <value|->`
//! (`-` removes the override; values are percent-encoded), `delete <uuid>`,
//! `producer-ids <block end>`. A line whose CRC or shape is wrong ends the
//! replay: it is a torn write from a crash and is truncated away.

use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
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
            _ => None,
        }
    }
}

/// Decodes records up to the first bad line; returns them and the length of
/// the valid prefix.
pub fn replay(text: &[u8]) -> (Vec<MetadataRecord>, usize) {
    let mut records = Vec::new();
    let mut pos = 0;
    while let Some(nl) = text[pos..].iter().position(|&b| b == b'\n') {
        let line = &text[pos..pos + nl];
        let Some(record) = decode_line(line) else {
            break;
        };
        records.push(record);
        pos += nl + 1;
    }
    (records, pos)
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
}
