//! DescribeConfigs for topic and broker resources.

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Code, RequestContext};
use crate::config::{self, DescribedConfig};

/// Kafka's ConfigResource.Type codes.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;

pub fn describe_configs(
    ctx: &RequestContext,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let broker = &ctx.broker;
    let with_docs = ctx.version >= 3 && req.include_documentation;
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let keys: Option<Vec<String>> = r
                .configuration_keys
                .as_ref()
                .map(|k| k.iter().map(|s| s.to_string()).collect());
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let described = match r.resource_type {
                TOPIC => match broker.metadata.image().topic(r.resource_name.as_str()) {
                    Some(info) => Ok(config::describe_topic(
                        &broker.config,
                        &info.overrides,
                        keys.as_deref(),
                        req.include_synonyms,
                    )),
                    None => Err((
                        Code::UnknownTopicOrPartition,
                        format!("Topic {} does not exist", r.resource_name.as_str()),
                    )),
                },
                // An empty name asks for cluster-wide dynamic defaults, of
                // which a static configuration has none.
                BROKER if r.resource_name.is_empty() => Ok(Vec::new()),
                BROKER if r.resource_name.as_str() == broker.node_id().to_string() => Ok(broker
                    .config
                    .describe(keys.as_deref(), req.include_synonyms)),
                BROKER => Err((
                    Code::InvalidRequest,
                    format!(
                        "Unexpected broker id, expected {} but received {}",
                        broker.node_id(),
                        r.resource_name.as_str()
                    ),
                )),
                other => Err((
                    Code::InvalidRequest,
                    format!("Unsupported resource type {other}"),
                )),
            };
            match described {
                Ok(configs) => result.with_configs(
                    configs
                        .into_iter()
                        .map(|c| convert(c, ctx.version, with_docs))
                        .collect(),
                ),
                Err((code, msg)) => result
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(msg))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// `config_type` and `documentation` exist from v3 on; below that they must
/// keep the crate's defaults.
fn convert(c: DescribedConfig, version: i16, with_docs: bool) -> DescribeConfigsResourceResult {
    let r = DescribeConfigsResourceResult::default();
    let r = if version >= 3 {
        r.with_config_type(c.config_type)
            .with_documentation(if with_docs {
                c.documentation.map(StrBytes::from_string)
            } else {
                None
            })
    } else {
        r
    };
    r.with_name(StrBytes::from_string(c.name))
        .with_value(c.value.map(StrBytes::from_string))
        .with_read_only(c.read_only)
        .with_config_source(c.source as i8)
        .with_is_sensitive(c.is_sensitive)
        .with_synonyms(
            c.synonyms
                .into_iter()
                .map(|s| {
                    DescribeConfigsSynonym::default()
                        .with_name(StrBytes::from_string(s.name))
                        .with_value(s.value.map(StrBytes::from_string))
                        .with_source(s.source as i8)
                })
                .collect(),
        )
}
