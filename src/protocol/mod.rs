//! Kafka wire framing above the socket: request header decoding with the
//! version gate, and response encoding (length prefix + header + body).
//!
//! Frame layout (all big-endian): `length: i32` then `length` bytes holding
//! `api_key: i16, api_version: i16, correlation_id: i32, client_id:
//! nullable string` (+ tagged fields for flexible header v2), then the body.

pub mod apis;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

/// The fixed prefix every request header starts with.
pub const MIN_HEADER_LEN: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("request of {len} bytes is shorter than the {MIN_HEADER_LEN}-byte header prefix")]
    TruncatedHeader { len: usize },
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("unsupported version {version} of {key:?}")]
    UnsupportedVersion { key: ApiKey, version: i16 },
    #[error("malformed {key:?} v{version} request: {reason}")]
    Malformed {
        key: ApiKey,
        version: i16,
        reason: String,
    },
}

/// The first eight bytes of a request, read before anything is decoded.
#[derive(Clone, Copy, Debug)]
pub struct HeaderPrefix {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

impl HeaderPrefix {
    pub fn peek(frame: &[u8]) -> Result<HeaderPrefix, ProtocolError> {
        let Some(prefix) = frame.get(..MIN_HEADER_LEN) else {
            return Err(ProtocolError::TruncatedHeader { len: frame.len() });
        };
        Ok(HeaderPrefix {
            api_key: i16::from_be_bytes([prefix[0], prefix[1]]),
            api_version: i16::from_be_bytes([prefix[2], prefix[3]]),
            correlation_id: i32::from_be_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]),
        })
    }
}

/// Decodes the request header; `frame` is advanced past it to the body.
pub fn decode_header(
    key: ApiKey,
    version: i16,
    frame: &mut Bytes,
) -> Result<RequestHeader, ProtocolError> {
    let header_version = key.request_header_version(version);
    RequestHeader::decode(frame, header_version).map_err(|e| ProtocolError::Malformed {
        key,
        version,
        reason: format!("header: {e}"),
    })
}

/// Decodes a request body; trailing bytes are tolerated as Kafka does for
/// forward-compatible tagged fields but an underrun is an error.
pub fn decode_body<T: Decodable>(
    key: ApiKey,
    version: i16,
    body: &mut Bytes,
) -> Result<T, ProtocolError> {
    T::decode(body, version).map_err(|e| ProtocolError::Malformed {
        key,
        version,
        reason: e.to_string(),
    })
}

/// Encodes a whole response frame: length prefix, response header in the
/// version the API demands, body.
pub fn encode_response<T: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Result<Bytes, ProtocolError> {
    let header_version = key.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let malformed = |e: anyhow::Error| ProtocolError::Malformed {
        key,
        version,
        reason: format!("encoding response: {e}"),
    };
    let size = header.compute_size(header_version).map_err(malformed)?
        + body.compute_size(version).map_err(malformed)?;
    let mut buf = BytesMut::with_capacity(size + 4);
    buf.put_i32(size as i32);
    header.encode(&mut buf, header_version).map_err(malformed)?;
    body.encode(&mut buf, version).map_err(malformed)?;
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::*;
    use proptest::prelude::*;

    /// Decodes `body` as the request of `key` at `version`, discarding the result.
    fn decode_any(key: ApiKey, version: i16, body: &mut Bytes) {
        macro_rules! try_decode {
            ($($k:ident => $t:ty),* $(,)?) => {
                match key {
                    $(ApiKey::$k => { let _ = decode_body::<$t>(key, version, body); })*
                    _ => {}
                }
            };
        }
        try_decode!(
            Produce => ProduceRequest,
            Fetch => FetchRequest,
            ListOffsets => ListOffsetsRequest,
            Metadata => MetadataRequest,
            ApiVersions => ApiVersionsRequest,
            CreateTopics => CreateTopicsRequest,
            DeleteTopics => DeleteTopicsRequest,
            DeleteRecords => DeleteRecordsRequest,
            InitProducerId => InitProducerIdRequest,
            DescribeConfigs => DescribeConfigsRequest,
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

        /// Arbitrary bytes after a valid header prefix never panic or abort
        /// the decoder (hostile length prefixes included), for every API and
        /// version we accept.
        #[test]
        fn arbitrary_bodies_never_panic(which in 0usize..apis::SUPPORTED.len(), v in 0i16..20, tail in prop::collection::vec(any::<u8>(), 0..64), big in any::<bool>()) {
            let spec = apis::SUPPORTED[which];
            let version = spec.min + v % (spec.max - spec.min + 1);
            let mut raw = tail.clone();
            if big {
                // Length-like fields claiming far more than is there.
                raw.splice(0..0, [0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]);
            }
            let mut frame = Bytes::from(raw);
            if decode_header(spec.key, version, &mut frame).is_ok() {
                decode_any(spec.key, version, &mut frame);
            }
            let mut body = Bytes::from(tail);
            decode_any(spec.key, version, &mut body);
        }
    }

    #[test]
    fn header_prefix_needs_eight_bytes() {
        assert!(HeaderPrefix::peek(&[0; 7]).is_err());
        let p = HeaderPrefix::peek(&[0, 3, 0, 12, 0, 0, 0, 9]).unwrap();
        assert_eq!((p.api_key, p.api_version, p.correlation_id), (3, 12, 9));
    }
}
