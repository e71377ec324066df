//! Kafka's topic name rules (`org.apache.kafka.common.internals.Topic`) and
//! its textual form of UUIDs (URL-safe base64 without padding).

use uuid::Uuid;

pub const MAX_NAME_LENGTH: usize = 249;

pub fn validate(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("topic name cannot be '{name}'"));
    }
    if name.len() > MAX_NAME_LENGTH {
        return Err(format!(
            "topic name is {} characters, the limit is {MAX_NAME_LENGTH}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name '{name}' contains '{c}'; only ASCII alphanumerics, '.', '_' and '-' are legal"
        ));
    }
    Ok(())
}

pub fn uuid_to_base64(id: &Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (b as u32) << (16 - 8 * i));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Kafka never hands out the zero UUID, the reserved metadata-topic id (1),
/// or an id whose text starts with '-' (it would read as a CLI flag).
pub fn usable_topic_id(id: &Uuid) -> bool {
    id.as_u128() > 1 && !uuid_to_base64(id).starts_with('-')
}

/// Topics only the coordinators write (Kafka's `Topic.isInternal`): shown
/// as internal in Metadata, refused to Produce and DeleteTopics, never
/// auto-created by Metadata. The transaction log joins them with
/// transactions.
pub const INTERNAL_TOPICS: &[&str] = &[
    crate::coordinator::group::OFFSETS_TOPIC,
    crate::coordinator::txn::TXN_STATE_TOPIC,
];

pub fn is_internal(name: &str) -> bool {
    INTERNAL_TOPICS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_on_both_sides_of_the_rules() {
        assert!(validate("a").is_ok());
        assert!(validate("Az09._-").is_ok());
        assert!(validate(&"x".repeat(249)).is_ok());
        assert!(validate(&"x".repeat(250)).is_err());
        for bad in ["", ".", "..", "a b", "a/b", "ä", "a\0"] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
        assert!(validate("...").is_ok());
    }

    #[test]
    fn base64_matches_kafka() {
        // Kafka: new Uuid(0x0123456789abcdefL, 0xfedcba9876543210L).toString()
        let id = Uuid::from_u128(0x0123456789abcdef_fedcba9876543210);
        assert_eq!(uuid_to_base64(&id), "ASNFZ4mrze_-3LqYdlQyEA");
        assert_eq!(uuid_to_base64(&Uuid::nil()), "AAAAAAAAAAAAAAAAAAAAAA");
    }
}
