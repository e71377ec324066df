//! DescribeClientQuotas and AlterClientQuotas. Quotas are validated as
//! Kafka's controller validates them and stored in the metadata log (so they
//! survive restarts), but not enforced: no client is throttled.

use indexmap::IndexMap;
use kafka_protocol::messages::alter_client_quotas_request::EntityData as AlterEntity;
use kafka_protocol::messages::alter_client_quotas_response::{
    EntityData as AlterResultEntity, EntryData as AlterResult,
};
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{str_bytes, Code, RequestContext};
use crate::metadata::QuotaEntity;

const USER: &str = "user";
const CLIENT_ID: &str = "client-id";
const IP: &str = "ip";

/// DescribeClientQuotas match types.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

/// How a quota value must look (Kafka's ConfigDef type of the key).
#[derive(Clone, Copy)]
enum QuotaType {
    Long,
    Int,
    Double,
}

/// Kafka's quota keys: for user and client-id entities, and for ip.
const USER_CLIENT_KEYS: &[(&str, QuotaType)] = &[
    ("producer_byte_rate", QuotaType::Long),
    ("consumer_byte_rate", QuotaType::Long),
    ("request_percentage", QuotaType::Double),
    ("controller_mutation_rate", QuotaType::Double),
];
const IP_KEYS: &[(&str, QuotaType)] = &[("connection_creation_rate", QuotaType::Int)];

type Failure = (Code, String);

pub fn describe_client_quotas(
    ctx: &RequestContext,
    req: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    match describe(ctx, &req) {
        Ok(entries) => DescribeClientQuotasResponse::default().with_entries(Some(entries)),
        Err((code, msg)) => DescribeClientQuotasResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(&msg)))
            .with_entries(None),
    }
}

fn describe(
    ctx: &RequestContext,
    req: &DescribeClientQuotasRequest,
) -> Result<Vec<EntryData>, Failure> {
    // Entity type → Some(name or None for the default): exact; None: any
    // specified entity of the type.
    let mut filter: IndexMap<String, Option<Option<String>>> = IndexMap::new();
    for c in &req.components {
        let t = c.entity_type.to_string();
        if t.is_empty() {
            return Err((Code::InvalidRequest, "Invalid empty entity type.".into()));
        }
        if filter.contains_key(&t) {
            return Err((
                Code::InvalidRequest,
                format!("Entity type {t} cannot appear more than once in the filter."),
            ));
        }
        if ![USER, CLIENT_ID, IP].contains(&t.as_str()) {
            return Err((
                Code::UnsupportedVersion,
                format!("Unsupported entity type {t}"),
            ));
        }
        let m = c._match.as_ref().map(|s| s.to_string());
        let wanted = match c.match_type {
            MATCH_EXACT => match m {
                Some(name) => Some(Some(name)),
                None => {
                    return Err((
                        Code::InvalidRequest,
                        "Request specified MATCH_TYPE_EXACT, but set match string to null.".into(),
                    ))
                }
            },
            MATCH_DEFAULT if m.is_some() => {
                return Err((
                    Code::InvalidRequest,
                    "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."
                        .into(),
                ))
            }
            MATCH_DEFAULT => Some(None),
            MATCH_SPECIFIED if m.is_some() => {
                return Err((
                    Code::InvalidRequest,
                    "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."
                        .into(),
                ))
            }
            MATCH_SPECIFIED => None,
            other => return Err((Code::InvalidRequest, format!("Unknown match type {other}"))),
        };
        filter.insert(t, wanted);
    }
    if filter.contains_key(IP) && (filter.contains_key(USER) || filter.contains_key(CLIENT_ID)) {
        return Err((
            Code::InvalidRequest,
            "Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component.".into(),
        ));
    }
    let image = ctx.broker.metadata.image();
    let entries = image
        .client_quotas
        .iter()
        .filter(|(entity, _)| matches(entity, &filter, req.strict))
        .map(|(entity, values)| {
            EntryData::default()
                .with_entity(
                    entity
                        .iter()
                        .map(|(t, n)| {
                            EntityData::default()
                                .with_entity_type(str_bytes(t))
                                .with_entity_name(n.as_deref().map(str_bytes))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .iter()
                        .map(|(k, v)| ValueData::default().with_key(str_bytes(k)).with_value(*v))
                        .collect(),
                )
        })
        .collect();
    Ok(entries)
}

/// Kafka's filter semantics: every component must match; `strict` also
/// requires the entity to have no other types.
fn matches(
    entity: &QuotaEntity,
    filter: &IndexMap<String, Option<Option<String>>>,
    strict: bool,
) -> bool {
    if strict && entity.len() != filter.len() {
        return false;
    }
    filter.iter().all(|(t, wanted)| {
        let Some((_, name)) = entity.iter().find(|(et, _)| et == t) else {
            return false;
        };
        match wanted {
            Some(exact) => exact == name,
            None => true,
        }
    })
}

pub fn alter_client_quotas(
    ctx: &RequestContext,
    req: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let image = ctx.broker.metadata.image();
    // One result per distinct entity, as Kafka keys its results by entity.
    let mut results: IndexMap<QuotaEntity, (Vec<AlterEntity>, Option<Failure>)> = IndexMap::new();
    let mut changes: Vec<(QuotaEntity, String, Option<f64>)> = Vec::new();
    for entry in &req.entries {
        let entity = match to_entity(&entry.entity) {
            Ok(e) => e,
            Err(f) => {
                // Not a valid entity: reported as sent.
                let mut key: QuotaEntity = entry
                    .entity
                    .iter()
                    .map(|e| {
                        (
                            e.entity_type.to_string(),
                            e.entity_name.as_ref().map(|n| n.to_string()),
                        )
                    })
                    .collect();
                key.sort();
                results.insert(key, (entry.entity.clone(), Some(f)));
                continue;
            }
        };
        let mut ops: IndexMap<String, Option<f64>> = IndexMap::new();
        let mut duplicate = results.contains_key(&entity);
        for op in &entry.ops {
            let value = (!op.remove).then_some(op.value);
            if ops.insert(op.key.to_string(), value).is_some() {
                duplicate = true;
            }
        }
        if duplicate {
            // Kafka reports a repeated entity or key this way (the last
            // message set wins over "Duplicate quota key").
            let msg = format!("Ignoring duplicate entity {}", entity_string(&entity));
            results.insert(
                entity,
                (entry.entity.clone(), Some((Code::InvalidRequest, msg))),
            );
            continue;
        }
        match validate_ops(&entity, &ops) {
            Err(f) => {
                results.insert(entity, (entry.entity.clone(), Some(f)));
            }
            Ok(()) => {
                let current = image.client_quotas.get(&entity);
                for (key, value) in ops {
                    let now = current.and_then(|c| c.get(&key)).copied();
                    let changed = match value {
                        None => now.is_some(),
                        Some(v) => now != Some(v),
                    };
                    if changed {
                        changes.push((entity.clone(), key, value));
                    }
                }
                results.insert(entity, (entry.entity.clone(), None));
            }
        }
    }
    if !req.validate_only {
        if let Err(e) = ctx.broker.metadata.alter_client_quotas(changes) {
            tracing::error!("storing client quotas failed: {e}");
            for (_, failure) in results.values_mut() {
                if failure.is_none() {
                    *failure = Some((Code::UnknownServerError, String::new()));
                }
            }
        }
    }
    let entries = results
        .into_values()
        .map(|(entity, failure)| {
            let result = AlterResult::default().with_entity(
                entity
                    .into_iter()
                    .map(|e| {
                        AlterResultEntity::default()
                            .with_entity_type(e.entity_type)
                            .with_entity_name(e.entity_name)
                    })
                    .collect(),
            );
            match failure {
                // Kafka sends null, not the schema's "".
                None => result.with_error_message(None),
                Some((code, msg)) => result
                    .with_error_code(code.code())
                    .with_error_message((!msg.is_empty()).then(|| StrBytes::from_string(msg))),
            }
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}

/// Checks an entity's types and names (Kafka's `validateEntity` and
/// `configKeysForEntityType`) and returns it in stored form.
fn to_entity(wire: &[AlterEntity]) -> Result<QuotaEntity, Failure> {
    if wire.is_empty() {
        return Err((
            Code::InvalidRequest,
            "Invalid empty client quota entity".into(),
        ));
    }
    let mut entity: QuotaEntity = Vec::new();
    for e in wire {
        let t = e.entity_type.to_string();
        let name = e.entity_name.as_ref().map(|n| n.to_string());
        if entity.iter().any(|(et, _)| *et == t) {
            return Err((
                Code::InvalidRequest,
                format!("Invalid client quota entity, duplicate entity entry {t}"),
            ));
        }
        if ![USER, CLIENT_ID, IP].contains(&t.as_str()) {
            return Err((
                Code::InvalidRequest,
                format!("Unhandled client quota entity type: {t}"),
            ));
        }
        if name.as_deref() == Some("") {
            return Err((Code::InvalidRequest, format!("Empty {t} not supported")));
        }
        entity.push((t, name));
    }
    entity.sort();
    let has = |t: &str| entity.iter().any(|(et, _)| et == t);
    if has(IP) {
        if has(USER) || has(CLIENT_ID) {
            return Err((
                Code::InvalidRequest,
                "Invalid quota entity combination, IP entity shouldnot be combined with User or ClientId".into(),
            ));
        }
        if let Some((_, Some(host))) = entity.iter().find(|(t, _)| t == IP) {
            if !resolvable(host) {
                return Err((
                    Code::InvalidRequest,
                    format!("{host} is not a valid IP or resolvable host."),
                ));
            }
        }
    }
    Ok(entity)
}

/// As Java's `InetAddress.getByName`, an address literal or a known host
/// name; names are looked up in `/etc/hosts` only, never through a name
/// server, so a request cannot block a runtime thread on DNS.
fn resolvable(host: &str) -> bool {
    !host.is_empty() && crate::config::listeners::resolve_locally(host).is_some()
}

/// Kafka's `validateQuotaKeyValue` for every value being set; removals are
/// not checked (removing an unknown key is a no-op).
fn validate_ops(entity: &QuotaEntity, ops: &IndexMap<String, Option<f64>>) -> Result<(), Failure> {
    let keys = if entity.iter().any(|(t, _)| t == IP) {
        IP_KEYS
    } else {
        USER_CLIENT_KEYS
    };
    for (key, value) in ops {
        let Some(v) = value else { continue };
        let v = *v;
        let Some((_, ty)) = keys.iter().find(|(k, _)| k == key) else {
            return Err((
                Code::InvalidRequest,
                format!("Invalid configuration key {key}"),
            ));
        };
        if v <= 0.0 {
            return Err((
                Code::InvalidRequest,
                format!("Quota {key} must be greater than 0"),
            ));
        }
        let too_large = match ty {
            QuotaType::Double => continue,
            QuotaType::Int if v > i32::MAX as f64 => Some("an INT"),
            QuotaType::Long if v > i64::MAX as f64 => Some("a LONG"),
            _ => None,
        };
        if let Some(what) = too_large {
            return Err((
                Code::InvalidRequest,
                format!("Proposed value for {key} is too large for {what}."),
            ));
        }
        if (v % 1.0).abs() > 1e-6 {
            return Err((
                Code::InvalidRequest,
                format!("{key} cannot be a fractional value."),
            ));
        }
    }
    Ok(())
}

/// Java's `ClientQuotaEntity.toString` (entries in type order here).
fn entity_string(entity: &QuotaEntity) -> String {
    let parts: Vec<String> = entity
        .iter()
        .map(|(t, n)| format!("{t}={}", n.as_deref().unwrap_or("null")))
        .collect();
    format!("ClientQuotaEntity(entries={{{}}})", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(parts: &[(&str, Option<&str>)]) -> QuotaEntity {
        let mut e: QuotaEntity = parts
            .iter()
            .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
            .collect();
        e.sort();
        e
    }

    #[test]
    fn filters_match_as_in_kafka() {
        let alice = entity(&[("user", Some("alice"))]);
        let alice_app = entity(&[("user", Some("alice")), ("client-id", Some("app"))]);
        let default_user = entity(&[("user", None)]);
        let mut f = IndexMap::new();
        f.insert("user".to_string(), Some(Some("alice".to_string())));
        assert!(matches(&alice, &f, false));
        assert!(matches(&alice_app, &f, false));
        assert!(matches(&alice, &f, true));
        assert!(!matches(&alice_app, &f, true));
        assert!(!matches(&default_user, &f, false));
        f.insert("user".to_string(), Some(None));
        assert!(matches(&default_user, &f, true));
        assert!(!matches(&alice, &f, false));
        f.insert("user".to_string(), None);
        assert!(matches(&alice, &f, false) && matches(&default_user, &f, false));
        let empty = IndexMap::new();
        assert!(matches(&alice_app, &empty, false));
        assert!(!matches(&alice_app, &empty, true));
    }

    #[test]
    fn values_are_checked_by_key_type() {
        let user = entity(&[("user", Some("u"))]);
        let ip = entity(&[("ip", Some("127.0.0.1"))]);
        let check = |e: &QuotaEntity, k: &str, v: f64| {
            let mut ops = IndexMap::new();
            ops.insert(k.to_string(), Some(v));
            validate_ops(e, &ops).map_err(|(_, m)| m)
        };
        assert!(check(&user, "producer_byte_rate", 1024.0).is_ok());
        assert!(check(&user, "request_percentage", 12.5).is_ok());
        assert_eq!(
            check(&user, "producer_byte_rate", 10.5).unwrap_err(),
            "producer_byte_rate cannot be a fractional value."
        );
        assert_eq!(
            check(&user, "consumer_byte_rate", 0.0).unwrap_err(),
            "Quota consumer_byte_rate must be greater than 0"
        );
        assert_eq!(
            check(&user, "connection_creation_rate", 5.0).unwrap_err(),
            "Invalid configuration key connection_creation_rate"
        );
        assert!(check(&ip, "connection_creation_rate", 5.0).is_ok());
        assert_eq!(
            check(&ip, "connection_creation_rate", 3e9).unwrap_err(),
            "Proposed value for connection_creation_rate is too large for an INT."
        );
    }
}
