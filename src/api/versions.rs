//! ApiVersions, derived from the table in `protocol::apis`.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use super::Code;
use crate::protocol::apis::SUPPORTED;

pub fn handle(_req: ApiVersionsRequest, _version: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(api_list())
}

fn api_list() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|s| {
            ApiVersion::default()
                .with_api_key(s.key as i16)
                .with_min_version(s.min)
                .with_max_version(s.max)
        })
        .collect()
}

/// The reply to an ApiVersions request of a version we do not know: v0
/// layout (header v0: correlation id only), UNSUPPORTED_VERSION and the full
/// key list, as Kafka sends it.
pub fn unsupported_version_reply(correlation_id: i32) -> Bytes {
    let keys = api_list();
    let mut buf = BytesMut::with_capacity(4 + 4 + 2 + 4 + keys.len() * 6);
    buf.put_i32(0); // length, patched below
    buf.put_i32(correlation_id);
    buf.put_i16(Code::UnsupportedVersion.code());
    buf.put_i32(keys.len() as i32);
    for k in &keys {
        buf.put_i16(k.api_key);
        buf.put_i16(k.min_version);
        buf.put_i16(k.max_version);
    }
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.freeze()
}
