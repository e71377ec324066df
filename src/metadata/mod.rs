//! Cluster metadata for a single node: the topic registry, persistent
//! cluster/node identity and producer-id allocation.
//!
//! Every change is a record appended (and fsynced) to the metadata log, then
//! applied to a new immutable [`MetadataImage`]; readers clone the current
//! image's `Arc` and never wait for a writer. On start-up the log is replayed.
//! When a Raft quorum arrives (DESIGN §5) the same records travel through it.

mod records;
pub mod topic_name;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use parking_lot::{Mutex, RwLock};
use uuid::Uuid;

use crate::config::{BrokerConfig, ConfigError, DynamicBrokerConfigs, TopicConfig};
pub use records::{MetadataRecord, QuotaEntity};

pub const METADATA_LOG: &str = "runnel-metadata.log";
pub const META_PROPERTIES: &str = "meta.properties";
/// Producer ids are handed out from blocks whose end is made durable before
/// the first id of the block is used, so no id is ever reused after a crash.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

#[derive(Debug, Clone)]
pub struct TopicInfo {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    pub overrides: IndexMap<String, String>,
    pub config: TopicConfig,
}

impl TopicInfo {
    pub fn is_internal(&self) -> bool {
        topic_name::is_internal(&self.name)
    }
}

#[derive(Debug, Clone, Default)]
pub struct MetadataImage {
    pub topics: IndexMap<String, Arc<TopicInfo>>,
    pub by_id: HashMap<Uuid, Arc<TopicInfo>>,
    /// Client quotas (stored, not enforced): entity → key → value.
    pub client_quotas: std::collections::BTreeMap<QuotaEntity, IndexMap<String, f64>>,
    /// Dynamic broker configs by resource name (a node id, or "" for the
    /// cluster-wide defaults): key → value as given to AlterConfigs.
    pub broker_configs: IndexMap<String, IndexMap<String, String>>,
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicInfo>> {
        self.topics.get(name)
    }
    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Arc<TopicInfo>> {
        self.by_id.get(id)
    }

    /// Adds `info`, or replaces the topic with its id, under both keys.
    fn put_topic(&mut self, info: Arc<TopicInfo>) {
        self.topics.insert(info.name.clone(), info.clone());
        self.by_id.insert(info.id, info);
    }

    /// Removes topic `id` under both keys.
    fn remove_topic(&mut self, id: &Uuid) {
        if let Some(info) = self.by_id.remove(id) {
            self.topics.shift_remove(&info.name);
        }
    }

    /// The dynamic configs that apply to node `node_id`.
    pub fn dynamic_broker(&self, node_id: i32) -> DynamicBrokerConfigs {
        DynamicBrokerConfigs {
            per_broker: self
                .broker_configs
                .get(&node_id.to_string())
                .cloned()
                .unwrap_or_default(),
            cluster: self.broker_configs.get("").cloned().unwrap_or_default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("unknown topic '{0}'")]
    UnknownTopic(String),
    #[error("invalid topic name: {0}")]
    InvalidTopicName(String),
    #[error("invalid number of partitions {0}")]
    InvalidPartitions(i32),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("metadata log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Identity(String),
}

struct Writer {
    file: File,
    path: PathBuf,
    next_producer_id: i64,
    producer_id_block_end: i64,
}

impl Writer {
    fn append(&mut self, record: &MetadataRecord) -> Result<(), MetadataError> {
        self.append_all(std::slice::from_ref(record))
    }

    /// Appends the records of one change so that a crash keeps all or none
    /// of them (a batch), in one write and one fsync. A failed write is cut
    /// off again: a later record behind a torn line would be lost at replay.
    fn append_all(&mut self, records: &[MetadataRecord]) -> Result<(), MetadataError> {
        if records.is_empty() {
            return Ok(());
        }
        let text = records::encode_batch(records);
        let io = |source| MetadataError::Io {
            path: self.path.clone(),
            source,
        };
        let len = self.file.metadata().map_err(io)?.len();
        let written = self
            .file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            if let Err(t) = self.file.set_len(len) {
                tracing::error!(path = %self.path.display(), "cutting off a failed metadata write failed: {t}");
            }
            return Err(io(e));
        }
        Ok(())
    }
}

pub struct MetadataStore {
    image: RwLock<Arc<MetadataImage>>,
    /// Serialises metadata changes: the record must be durable before the
    /// image that contains it is published. A `parking_lot::Mutex` because no
    /// `.await` happens while it is held; changes are rare (topic admin,
    /// one fsync per producer-id block), never on the produce/fetch path.
    writer: Mutex<Writer>,
    cluster_id: String,
    node_id: i32,
    /// Effective topic defaults: the static ones with dynamic broker configs
    /// layered on (once `use_broker_config` has supplied the static config).
    topic_defaults: RwLock<TopicConfig>,
    /// The static broker configuration the dynamic configs layer over.
    static_config: RwLock<Option<BrokerConfig>>,
}

impl MetadataStore {
    /// Opens (or initialises) the metadata in `dir`: checks `meta.properties`
    /// against `node_id`, replays the metadata log, truncating a torn tail.
    pub fn open(
        dir: &Path,
        node_id: i32,
        cluster_id_override: Option<&str>,
        topic_defaults: TopicConfig,
    ) -> Result<MetadataStore, MetadataError> {
        fs::create_dir_all(dir).map_err(|source| MetadataError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let cluster_id = load_or_init_identity(dir, node_id, cluster_id_override)?;
        let path = dir.join(METADATA_LOG);
        let io = |source| MetadataError::Io {
            path: path.clone(),
            source,
        };
        let text = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(e)),
        };
        let (records, valid_len) = records::replay(&text);
        if valid_len < text.len() {
            tracing::warn!(
                path = %path.display(),
                "metadata log has a torn or corrupt tail at byte {valid_len} of {}; truncating",
                text.len()
            );
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        file.set_len(valid_len as u64).map_err(io)?;

        let mut image = MetadataImage::default();
        let mut producer_id_block_end = 0;
        for record in records {
            match record {
                MetadataRecord::ProducerIds { block_end } => producer_id_block_end = block_end,
                other => apply(&mut image, other, &topic_defaults)?,
            }
        }
        Ok(MetadataStore {
            image: RwLock::new(Arc::new(image)),
            writer: Mutex::new(Writer {
                file,
                path,
                next_producer_id: producer_id_block_end,
                producer_id_block_end,
            }),
            cluster_id,
            node_id,
            topic_defaults: RwLock::new(topic_defaults),
            static_config: RwLock::new(None),
        })
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().clone()
    }

    /// Makes `next` the image readers see; called with the writer lock held,
    /// after the change's records are durable.
    fn publish(&self, next: MetadataImage) {
        *self.image.write() = Arc::new(next);
    }

    /// Publishes `image` with `info` added or replacing its topic.
    fn publish_topic(&self, image: &MetadataImage, info: TopicInfo) -> Arc<TopicInfo> {
        let info = Arc::new(info);
        let mut next = image.clone();
        next.put_topic(info.clone());
        self.publish(next);
        info
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// Validates a new topic without creating it (CreateTopics validate_only
    /// and the first half of a real create).
    pub fn validate_new_topic(
        &self,
        name: &str,
        partitions: i32,
        overrides: &IndexMap<String, String>,
    ) -> Result<TopicConfig, MetadataError> {
        topic_name::validate(name).map_err(MetadataError::InvalidTopicName)?;
        if self.image.read().topics.contains_key(name) {
            return Err(MetadataError::TopicExists(name.to_string()));
        }
        if partitions < 1 {
            return Err(MetadataError::InvalidPartitions(partitions));
        }
        Ok(TopicConfig::resolve(
            &self.topic_defaults.read(),
            overrides,
        )?)
    }

    /// Creates a topic. `prepare` runs (under the metadata write lock) after
    /// validation and before the record is written, so partition directories
    /// exist before any reader can see the topic; a crash between the two
    /// leaves directories that start-up removes.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        overrides: IndexMap<String, String>,
        prepare: impl FnOnce(&TopicInfo) -> Result<(), MetadataError>,
    ) -> Result<Arc<TopicInfo>, MetadataError> {
        let mut writer = self.writer.lock();
        let config = self.validate_new_topic(name, partitions, &overrides)?;
        let image = self.image();
        let id = loop {
            let id = Uuid::new_v4();
            if !image.by_id.contains_key(&id) && topic_name::usable_topic_id(&id) {
                break id;
            }
        };
        let info = TopicInfo {
            name: name.to_string(),
            id,
            partitions,
            overrides: overrides.clone(),
            config,
        };
        prepare(&info)?;
        // One batch: a crash must not leave the topic without its overrides
        // (`__consumer_offsets` without `cleanup.policy=compact`).
        let mut records = vec![MetadataRecord::Topic {
            name: name.to_string(),
            id,
            partitions,
        }];
        records.extend(overrides.iter().map(|(key, value)| MetadataRecord::Config {
            id,
            key: key.clone(),
            value: Some(value.clone()),
        }));
        writer.append_all(&records)?;
        Ok(self.publish_topic(&image, info))
    }

    /// Removes a topic from the image (durably). The caller deletes its data.
    pub fn delete_topic(&self, id: Uuid) -> Result<Arc<TopicInfo>, MetadataError> {
        let mut writer = self.writer.lock();
        let image = self.image();
        let Some(info) = image.by_id.get(&id).cloned() else {
            return Err(MetadataError::UnknownTopic(id.to_string()));
        };
        writer.append(&MetadataRecord::DeleteTopic { id })?;
        let mut next = (*image).clone();
        next.remove_topic(&id);
        self.publish(next);
        Ok(info)
    }

    /// Grows topic `id` to `count` partitions (CreatePartitions). `prepare`
    /// gets the grown topic and the first new partition and creates the logs
    /// before the record is written, as in [`MetadataStore::create_topic`];
    /// a crash in between leaves directories that start-up removes. If the
    /// write fails, `undo` gets the same arguments to remove them again, so
    /// that the live logs match the metadata.
    pub fn create_partitions(
        &self,
        id: Uuid,
        count: i32,
        prepare: impl FnOnce(&TopicInfo, i32) -> Result<(), MetadataError>,
        undo: impl FnOnce(&TopicInfo, i32),
    ) -> Result<Arc<TopicInfo>, MetadataError> {
        let mut writer = self.writer.lock();
        let image = self.image();
        let Some(old) = image.by_id.get(&id) else {
            return Err(MetadataError::UnknownTopic(id.to_string()));
        };
        // Checked again under the lock: another request may have grown it.
        if count <= old.partitions {
            return Err(MetadataError::InvalidPartitions(count));
        }
        let mut info = (**old).clone();
        let from = info.partitions;
        info.partitions = count;
        prepare(&info, from)?;
        if let Err(e) = writer.append(&MetadataRecord::Partitions {
            id,
            partitions: count,
        }) {
            undo(&info, from);
            return Err(e);
        }
        Ok(self.publish_topic(&image, info))
    }

    /// Makes every later metadata write fail with a real I/O error (the log
    /// reopened read-only), as a full or failing disk would.
    #[cfg(test)]
    pub(crate) fn fail_writes(&self) {
        let mut writer = self.writer.lock();
        writer.file = File::open(&writer.path).unwrap();
    }

    /// Applies client-quota changes (`None` removes the key) durably and at
    /// once: all records are written before the new image is published.
    pub fn alter_client_quotas(
        &self,
        changes: Vec<(QuotaEntity, String, Option<f64>)>,
    ) -> Result<(), MetadataError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut writer = self.writer.lock();
        let records: Vec<_> = changes
            .iter()
            .map(|(entity, key, value)| MetadataRecord::Quota {
                entity: entity.clone(),
                key: key.clone(),
                value: *value,
            })
            .collect();
        writer.append_all(&records)?;
        let mut next = (*self.image()).clone();
        for (entity, key, value) in changes {
            apply_quota(&mut next, entity, key, value);
        }
        self.publish(next);
        Ok(())
    }

    /// Adopts the static broker configuration and applies the replayed
    /// dynamic broker configs over it: topic defaults and every topic's
    /// effective config are re-derived. Called once at start-up, before the
    /// logs are opened from the image.
    pub fn use_broker_config(&self, config: &BrokerConfig) {
        let _writer = self.writer.lock();
        let image = self.image();
        let dynamic = image.dynamic_broker(self.node_id);
        let (defaults, skipped) = config.topic_defaults_skipping_invalid(&dynamic);
        for (layer, key, e) in skipped {
            let resource = if layer.is_empty() {
                "the cluster default".to_owned()
            } else {
                format!("broker {}", self.node_id)
            };
            tracing::warn!(key = %key, "stored dynamic config {key} of {resource} is no longer valid and is ignored ({e}); the other dynamic configs apply");
        }
        *self.static_config.write() = Some(config.clone());
        let next = reresolve(&image, &defaults);
        *self.topic_defaults.write() = defaults;
        self.publish(next);
    }

    /// The effective defaults for topic configs.
    pub fn topic_defaults(&self) -> TopicConfig {
        self.topic_defaults.read().clone()
    }

    /// Checks a complete set of topic overrides against the current defaults.
    pub fn validate_topic_overrides(
        &self,
        overrides: &IndexMap<String, String>,
    ) -> Result<TopicConfig, MetadataError> {
        Ok(TopicConfig::resolve(
            &self.topic_defaults.read(),
            overrides,
        )?)
    }

    /// Replaces topic `id`'s overrides (AlterConfigs) with what `change`
    /// makes of the current ones: one `config` record per changed key, then
    /// the new image. `change` runs under the metadata lock, so two
    /// concurrent incremental changes both land; `apply` runs there too with
    /// the new topic, so concurrent changes reach the logs in order.
    pub fn alter_topic_configs<E: From<MetadataError>>(
        &self,
        id: Uuid,
        change: impl FnOnce(&IndexMap<String, String>) -> Result<IndexMap<String, String>, E>,
        apply: impl FnOnce(&TopicInfo),
    ) -> Result<Arc<TopicInfo>, E> {
        let mut writer = self.writer.lock();
        let image = self.image();
        let Some(old) = image.by_id.get(&id) else {
            return Err(MetadataError::UnknownTopic(id.to_string()).into());
        };
        let overrides = change(&old.overrides)?;
        let config = TopicConfig::resolve(&self.topic_defaults.read(), &overrides)
            .map_err(MetadataError::from)?;
        let records: Vec<_> = changed_keys(&old.overrides, &overrides)
            .map(|(key, value)| MetadataRecord::Config { id, key, value })
            .collect();
        writer.append_all(&records)?;
        let mut info = (**old).clone();
        info.overrides = overrides;
        info.config = config;
        apply(&info);
        Ok(self.publish_topic(&image, info))
    }

    /// Replaces the dynamic configs of broker resource `resource` (a node
    /// id, or "" for cluster defaults) with what `change` makes of the
    /// current ones, re-deriving the topic defaults and every topic's config.
    /// With `validate_only` nothing changes. `change` and `apply` run under
    /// the metadata lock (`apply` with the new image), so concurrent changes
    /// are applied one after the other.
    pub fn alter_broker_configs<E: From<MetadataError>>(
        &self,
        resource: &str,
        change: impl FnOnce(&IndexMap<String, String>) -> Result<IndexMap<String, String>, E>,
        validate_only: bool,
        apply: impl FnOnce(&MetadataImage),
    ) -> Result<(), E> {
        let mut writer = self.writer.lock();
        let image = self.image();
        let mut next = (*image).clone();
        let old = next
            .broker_configs
            .get(resource)
            .cloned()
            .unwrap_or_default();
        let configs = change(&old)?;
        if configs.is_empty() {
            next.broker_configs.shift_remove(resource);
        } else {
            next.broker_configs
                .insert(resource.to_owned(), configs.clone());
        }
        let defaults = {
            let static_config = self.static_config.read();
            let Some(static_config) = static_config.as_ref() else {
                return Err(MetadataError::Identity(
                    "dynamic broker configs need the static configuration".to_owned(),
                )
                .into());
            };
            static_config
                .topic_defaults_with(&next.dynamic_broker(self.node_id))
                .map_err(MetadataError::from)?
        };
        if validate_only {
            return Ok(());
        }
        // Kafka writes a record even for an unchanged broker value, so that
        // every broker reloads; one node has nothing to reload.
        let records: Vec<_> = changed_keys(&old, &configs)
            .map(|(key, value)| MetadataRecord::BrokerConfig {
                resource: resource.to_owned(),
                key,
                value,
            })
            .collect();
        writer.append_all(&records)?;
        let next = reresolve(&next, &defaults);
        *self.topic_defaults.write() = defaults;
        apply(&next);
        self.publish(next);
        Ok(())
    }

    /// A producer id never handed out before, on this node, across restarts.
    pub fn allocate_producer_id(&self) -> Result<i64, MetadataError> {
        let mut writer = self.writer.lock();
        if writer.next_producer_id >= writer.producer_id_block_end {
            let block_end = writer.producer_id_block_end + PRODUCER_ID_BLOCK;
            writer.append(&MetadataRecord::ProducerIds { block_end })?;
            writer.producer_id_block_end = block_end;
        }
        let id = writer.next_producer_id;
        writer.next_producer_id += 1;
        Ok(id)
    }
}

fn apply(
    image: &mut MetadataImage,
    record: MetadataRecord,
    defaults: &TopicConfig,
) -> Result<(), MetadataError> {
    match record {
        MetadataRecord::Topic {
            name,
            id,
            partitions,
        } => {
            image.put_topic(Arc::new(TopicInfo {
                name,
                id,
                partitions,
                overrides: IndexMap::new(),
                config: defaults.clone(),
            }));
        }
        MetadataRecord::Config { id, key, value } => {
            if let Some(old) = image.by_id.get(&id) {
                let mut info = (**old).clone();
                match value {
                    Some(v) => {
                        info.overrides.insert(key, v);
                    }
                    None => {
                        info.overrides.shift_remove(&key);
                    }
                }
                info.config = TopicConfig::resolve_stored(&info.name, defaults, &info.overrides);
                image.put_topic(Arc::new(info));
            }
        }
        MetadataRecord::DeleteTopic { id } => {
            image.remove_topic(&id);
        }
        MetadataRecord::ProducerIds { .. } => {}
        MetadataRecord::Partitions { id, partitions } => {
            if let Some(old) = image.by_id.get(&id) {
                let mut info = (**old).clone();
                info.partitions = info.partitions.max(partitions);
                image.put_topic(Arc::new(info));
            }
        }
        MetadataRecord::Quota { entity, key, value } => apply_quota(image, entity, key, value),
        MetadataRecord::BrokerConfig {
            resource,
            key,
            value,
        } => {
            let configs = image.broker_configs.entry(resource.clone()).or_default();
            match value {
                Some(v) => {
                    configs.insert(key, v);
                }
                None => {
                    configs.shift_remove(&key);
                    if configs.is_empty() {
                        image.broker_configs.shift_remove(&resource);
                    }
                }
            }
        }
    }
    Ok(())
}

/// What turns config map `old` into `new`, one entry per key: the new value
/// of a key that is added or changed (in `new`'s order), then `None` for
/// each key that is gone (in `old`'s order).
fn changed_keys<'a>(
    old: &'a IndexMap<String, String>,
    new: &'a IndexMap<String, String>,
) -> impl Iterator<Item = (String, Option<String>)> + 'a {
    let set = new
        .iter()
        .filter(|(key, value)| old.get(*key) != Some(*value))
        .map(|(key, value)| (key.clone(), Some(value.clone())));
    let removed = old
        .keys()
        .filter(|key| !new.contains_key(*key))
        .map(|key| (key.clone(), None));
    set.chain(removed)
}

/// `image` with every topic's config resolved again over `defaults`.
fn reresolve(image: &MetadataImage, defaults: &TopicConfig) -> MetadataImage {
    let mut next = image.clone();
    for info in image.topics.values() {
        let mut info = (**info).clone();
        info.config = TopicConfig::resolve_stored(&info.name, defaults, &info.overrides);
        next.put_topic(Arc::new(info));
    }
    next
}

fn apply_quota(image: &mut MetadataImage, entity: QuotaEntity, key: String, value: Option<f64>) {
    match value {
        Some(v) => {
            image
                .client_quotas
                .entry(entity)
                .or_default()
                .insert(key, v);
        }
        None => {
            if let Some(values) = image.client_quotas.get_mut(&entity) {
                values.shift_remove(&key);
                if values.is_empty() {
                    image.client_quotas.remove(&entity);
                }
            }
        }
    }
}

/// `meta.properties` in Kafka's format (version=1, cluster.id, node.id,
/// directory.id). A log dir formatted for another node id is refused, as
/// Kafka refuses it.
fn load_or_init_identity(
    dir: &Path,
    node_id: i32,
    cluster_id_override: Option<&str>,
) -> Result<String, MetadataError> {
    let path = dir.join(META_PROPERTIES);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let mut cluster_id = None;
            let mut stored_node = None;
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("cluster.id=") {
                    cluster_id = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("node.id=") {
                    stored_node = v.trim().parse::<i32>().ok();
                }
            }
            let cluster_id = cluster_id.ok_or_else(|| {
                MetadataError::Identity(format!("{} has no cluster.id", path.display()))
            })?;
            if stored_node != Some(node_id) {
                return Err(MetadataError::Identity(format!(
                    "{} belongs to node.id={:?}, but node.id={node_id} is configured",
                    path.display(),
                    stored_node
                )));
            }
            if let Some(wanted) = cluster_id_override {
                if wanted != cluster_id {
                    return Err(MetadataError::Identity(format!(
                        "{} has cluster.id={cluster_id}, but CLUSTER_ID={wanted} was given",
                        path.display()
                    )));
                }
            }
            Ok(cluster_id)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let cluster_id = cluster_id_override
                .map(str::to_string)
                .unwrap_or_else(|| topic_name::uuid_to_base64(&Uuid::new_v4()));
            let directory_id = topic_name::uuid_to_base64(&Uuid::new_v4());
            let text = format!(
                "#\n#Written by runnel\ncluster.id={cluster_id}\ndirectory.id={directory_id}\nnode.id={node_id}\nversion=1\n"
            );
            crate::log::fsutil::write_atomically(&path, text.as_bytes()).map_err(|source| {
                MetadataError::Io {
                    path: path.clone(),
                    source,
                }
            })?;
            Ok(cluster_id)
        }
        Err(source) => Err(MetadataError::Io { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;

    fn defaults() -> TopicConfig {
        BrokerConfig::default_for_tests(PathBuf::from("/nonexistent")).topic_defaults
    }

    fn map(pairs: &[(&str, &str)]) -> IndexMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A crash anywhere in the write of one request's records keeps all of
    /// them or none: never a topic without its overrides, never half of an
    /// AlterConfigs.
    #[test]
    fn a_change_survives_a_crash_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path(), 1, None, defaults()).unwrap();
        let log = dir.path().join(METADATA_LOG);
        let created = map(&[
            ("cleanup.policy", "compact"),
            ("segment.ms", "5000"),
            ("retention.ms", "7000"),
        ]);
        let t = store
            .create_topic("t", 1, created.clone(), |_| Ok(()))
            .unwrap();
        let after_create = fs::metadata(&log).unwrap().len() as usize;
        let altered = map(&[("cleanup.policy", "delete"), ("retention.bytes", "9")]);
        store
            .alter_topic_configs(t.id, |_| Ok::<_, MetadataError>(altered.clone()), |_| {})
            .unwrap();
        drop(store);
        let text = fs::read(&log).unwrap();
        for cut in 0..=text.len() {
            let crashed = tempfile::tempdir().unwrap();
            fs::copy(
                dir.path().join(META_PROPERTIES),
                crashed.path().join(META_PROPERTIES),
            )
            .unwrap();
            fs::write(crashed.path().join(METADATA_LOG), &text[..cut]).unwrap();
            let store = MetadataStore::open(crashed.path(), 1, None, defaults()).unwrap();
            let image = store.image();
            let overrides = image.topic("t").map(|t| t.overrides.clone());
            let expected = if cut < after_create {
                None
            } else if cut < text.len() {
                Some(created.clone())
            } else {
                Some(altered.clone())
            };
            assert_eq!(
                overrides,
                expected,
                "crash after {cut} of {} bytes",
                text.len()
            );
        }
    }

    /// A dynamic broker default that conflicts with a topic's override
    /// (Kafka accepts it) must not cost the topic its other overrides, now
    /// or after a restart.
    #[test]
    fn stored_overrides_outlive_a_conflicting_broker_default() {
        let dir = tempfile::tempdir().unwrap();
        let config = BrokerConfig::default_for_tests(dir.path().to_path_buf());
        let store = MetadataStore::open(dir.path(), 1, None, defaults()).unwrap();
        store.use_broker_config(&config);
        let overrides = map(&[
            ("cleanup.policy", "compact"),
            ("min.compaction.lag.ms", "1000"),
        ]);
        store.create_topic("c", 1, overrides, |_| Ok(())).unwrap();
        let lower = map(&[("log.cleaner.max.compaction.lag.ms", "500")]);
        store
            .alter_broker_configs(
                "",
                |_| Ok::<_, MetadataError>(lower),
                false,
                |image| assert!(image.topic("c").unwrap().config.compacted()),
            )
            .unwrap();
        let check = |store: &MetadataStore| {
            let c = store.image().topic("c").unwrap().config.clone();
            assert!(c.compacted(), "{}", c.cleanup_policy);
            assert_eq!(
                (c.min_compaction_lag_ms, c.max_compaction_lag_ms),
                (1000, 500)
            );
        };
        check(&store);
        drop(store);
        let store = MetadataStore::open(dir.path(), 1, None, defaults()).unwrap();
        store.use_broker_config(&config);
        check(&store);
    }

    #[test]
    fn topics_and_producer_ids_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path(), 1, None, defaults()).unwrap();
        let cluster = store.cluster_id().to_string();
        let mut overrides = IndexMap::new();
        overrides.insert("retention.ms".to_string(), "1000".to_string());
        let a = store.create_topic("a", 3, overrides, |_| Ok(())).unwrap();
        let b = store
            .create_topic("b", 1, IndexMap::new(), |_| Ok(()))
            .unwrap();
        store.delete_topic(b.id).unwrap();
        let first = store.allocate_producer_id().unwrap();
        let second = store.allocate_producer_id().unwrap();
        assert_eq!(second, first + 1);
        drop(store);

        let store = MetadataStore::open(dir.path(), 1, None, defaults()).unwrap();
        assert_eq!(store.cluster_id(), cluster);
        let image = store.image();
        assert_eq!(image.topics.len(), 1);
        let a2 = image.topic("a").unwrap();
        assert_eq!((a2.id, a2.partitions), (a.id, 3));
        assert_eq!(a2.config.retention_ms, 1000);
        assert!(image.topic("b").is_none());
        assert!(store.allocate_producer_id().unwrap() > second);
    }

    #[test]
    fn partition_counts_and_quotas_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path(), 1, None, defaults()).unwrap();
        let a = store
            .create_topic("a", 2, IndexMap::new(), |_| Ok(()))
            .unwrap();
        let mut seen_from = None;
        let grown = store
            .create_partitions(
                a.id,
                5,
                |info, from| {
                    seen_from = Some((from, info.partitions));
                    Ok(())
                },
                |_, _| panic!("nothing to undo"),
            )
            .unwrap();
        assert_eq!((grown.partitions, seen_from), (5, Some((2, 5))));
        assert!(matches!(
            store.create_partitions(a.id, 5, |_, _| Ok(()), |_, _| ()),
            Err(MetadataError::InvalidPartitions(5))
        ));
        // A failing prepare writes nothing.
        assert!(store
            .create_partitions(
                a.id,
                9,
                |_, _| Err(MetadataError::Identity("no".into())),
                |_, _| panic!("a failed prepare cleans up itself"),
            )
            .is_err());
        let user: QuotaEntity = vec![("user".into(), Some("alice".into()))];
        let default_ip: QuotaEntity = vec![("ip".into(), None)];
        store
            .alter_client_quotas(vec![
                (user.clone(), "producer_byte_rate".into(), Some(1024.0)),
                (user.clone(), "request_percentage".into(), Some(12.5)),
                (
                    default_ip.clone(),
                    "connection_creation_rate".into(),
                    Some(3.0),
                ),
            ])
            .unwrap();
        store
            .alter_client_quotas(vec![(user.clone(), "producer_byte_rate".into(), None)])
            .unwrap();
        drop(store);

        let store = MetadataStore::open(dir.path(), 1, None, defaults()).unwrap();
        let image = store.image();
        assert_eq!(image.topic("a").unwrap().partitions, 5);
        assert_eq!(image.topic_by_id(&a.id).unwrap().partitions, 5);
        let u = image.client_quotas.get(&user).unwrap();
        assert_eq!(u.len(), 1);
        assert_eq!(u.get("request_percentage"), Some(&12.5));
        assert_eq!(
            image
                .client_quotas
                .get(&default_ip)
                .unwrap()
                .get("connection_creation_rate"),
            Some(&3.0)
        );
    }

    #[test]
    fn partitions_made_for_a_failed_write_are_removed_again() {
        let dir = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path(), 1, None, defaults()).unwrap();
        let logs = crate::log::LogManager::open(data.path(), &store.image()).unwrap();
        let io = |source| MetadataError::Io {
            path: data.path().to_path_buf(),
            source,
        };
        let a = store
            .create_topic("a", 2, IndexMap::new(), |info| {
                logs.create_topic(info).map_err(io)
            })
            .unwrap();
        store.fail_writes();
        let failed = store.create_partitions(
            a.id,
            5,
            |grown, from| logs.create_partitions(grown, from).map_err(io),
            |grown, from| logs.forget_partitions(grown, from).unwrap(),
        );
        assert!(
            matches!(failed, Err(MetadataError::Io { .. })),
            "{failed:?}"
        );
        assert_eq!(store.image().topic("a").unwrap().partitions, 2);
        for p in 0..5 {
            assert_eq!(logs.get(&a.id, p).is_some(), p < 2, "partition {p} live");
        }
        let mut on_disk: Vec<String> = fs::read_dir(data.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        assert_eq!(on_disk, ["a-0", "a-1"]);
    }

    #[tokio::test]
    async fn a_topic_whose_record_fails_leaves_no_logs() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = BrokerConfig::default_for_tests(dir.path().to_path_buf());
        config.set("listeners", "PLAINTEXT://127.0.0.1:0").unwrap();
        let handle = crate::broker::start(config).await.unwrap();
        let broker = handle.broker.clone();
        let before = broker.logs.all().len();
        broker.metadata.fail_writes();
        let failed = broker.create_topic("doomed", 3, IndexMap::new());
        assert!(
            matches!(failed, Err(MetadataError::Io { .. })),
            "{failed:?}"
        );
        assert!(broker.metadata.image().topic("doomed").is_none());
        assert_eq!(
            broker.logs.all().len(),
            before,
            "no partition log left live"
        );
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("doomed"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        drop(broker);
        handle.shutdown().await.unwrap();
    }

    #[test]
    fn one_stale_dynamic_broker_config_leaves_the_others_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let config = BrokerConfig::default_for_tests(dir.path().to_path_buf());
        let store = MetadataStore::open(dir.path(), 1, None, defaults()).unwrap();
        store.use_broker_config(&config);
        let t = store
            .create_topic("t", 1, IndexMap::new(), |_| Ok(()))
            .unwrap();
        drop(store);
        // As if written by a version that accepted these values: a valid
        // and an invalid one per layer.
        let stored = |resource: &str, key: &str, value: &str| MetadataRecord::BrokerConfig {
            resource: resource.to_owned(),
            key: key.to_owned(),
            value: Some(value.to_owned()),
        };
        let batch = records::encode_batch(&[
            stored("", "log.retention.ms", "60000"),
            stored("", "log.segment.bytes", "banana"),
            stored("1", "log.retention.bytes", "4242"),
            stored("1", "log.retention.ms", "0"),
        ]);
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join(METADATA_LOG))
            .unwrap();
        file.write_all(batch.as_bytes()).unwrap();
        drop(file);

        let store = MetadataStore::open(dir.path(), 1, None, defaults()).unwrap();
        store.use_broker_config(&config);
        let d = store.topic_defaults();
        assert_eq!(d.retention_ms, 60_000, "the cluster value, not the bad one");
        assert_eq!(d.retention_bytes, 4242);
        assert_eq!(d.segment_bytes, config.topic_defaults.segment_bytes);
        let topic = store.image().topic_by_id(&t.id).unwrap().config.clone();
        assert_eq!((topic.retention_ms, topic.retention_bytes), (60_000, 4242));
    }

    #[test]
    fn torn_tail_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path(), 1, None, defaults()).unwrap();
        store
            .create_topic("a", 1, IndexMap::new(), |_| Ok(()))
            .unwrap();
        drop(store);
        let path = dir.path().join(METADATA_LOG);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"0badc0de\ttopic\tb").unwrap();
        drop(f);
        let store = MetadataStore::open(dir.path(), 1, None, defaults()).unwrap();
        assert_eq!(store.image().topics.len(), 1);
        store
            .create_topic("c", 1, IndexMap::new(), |_| Ok(()))
            .unwrap();
        drop(store);
        let store = MetadataStore::open(dir.path(), 1, None, defaults()).unwrap();
        assert_eq!(store.image().topics.len(), 2);
    }

    #[test]
    fn topic_and_broker_config_changes_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let config = BrokerConfig::default_for_tests(dir.path().to_path_buf());
        let store = MetadataStore::open(dir.path(), 1, None, defaults()).unwrap();
        store.use_broker_config(&config);
        let mut first = IndexMap::new();
        first.insert("segment.ms".to_string(), "5000".to_string());
        let t = store.create_topic("t", 1, first, |_| Ok(())).unwrap();
        let mut next = IndexMap::new();
        next.insert("retention.bytes".to_string(), "42".to_string());
        let mut seen = None;
        store
            .alter_topic_configs(
                t.id,
                |_| Ok::<_, MetadataError>(next),
                |info| seen = Some(info.config.clone()),
            )
            .unwrap();
        assert_eq!(seen.unwrap().retention_bytes, 42);
        let mut cluster = IndexMap::new();
        cluster.insert("log.retention.ms".to_string(), "60000".to_string());
        // validate_only writes nothing.
        store
            .alter_broker_configs(
                "",
                |_| Ok::<_, MetadataError>(cluster.clone()),
                true,
                |_| panic!("applied"),
            )
            .unwrap();
        assert!(store.image().broker_configs.is_empty());
        store
            .alter_broker_configs(
                "",
                |_| Ok::<_, MetadataError>(cluster),
                false,
                |image| assert_eq!(image.topic("t").unwrap().config.retention_ms, 60_000),
            )
            .unwrap();
        let mut bad = IndexMap::new();
        bad.insert("log.retention.ms".to_string(), "0".to_string());
        assert!(matches!(
            store.alter_broker_configs(
                "1",
                |_| Ok::<_, MetadataError>(bad),
                false,
                |_| panic!("applied")
            ),
            Err(MetadataError::Config(_))
        ));
        drop(store);

        let store = MetadataStore::open(dir.path(), 1, None, defaults()).unwrap();
        store.use_broker_config(&config);
        let info = store.image().topic("t").unwrap().clone();
        assert_eq!(info.overrides.len(), 1);
        assert_eq!(info.config.retention_bytes, 42);
        assert_eq!(info.config.segment_ms, 604_800_000);
        assert_eq!(info.config.retention_ms, 60_000);
        assert_eq!(store.topic_defaults().retention_ms, 60_000);
        assert_eq!(
            store
                .image()
                .dynamic_broker(1)
                .cluster
                .get("log.retention.ms"),
            Some(&"60000".to_string())
        );
    }

    #[test]
    fn another_node_id_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(MetadataStore::open(dir.path(), 1, None, defaults()).unwrap());
        let err = MetadataStore::open(dir.path(), 2, None, defaults())
            .err()
            .unwrap();
        assert!(err.to_string().contains("node.id"), "{err}");
    }

    #[test]
    fn duplicate_and_invalid_topics_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path(), 1, None, defaults()).unwrap();
        store
            .create_topic("a", 1, IndexMap::new(), |_| Ok(()))
            .unwrap();
        assert!(matches!(
            store.create_topic("a", 1, IndexMap::new(), |_| Ok(())),
            Err(MetadataError::TopicExists(_))
        ));
        assert!(matches!(
            store.create_topic("a b", 1, IndexMap::new(), |_| Ok(())),
            Err(MetadataError::InvalidTopicName(_))
        ));
        assert!(matches!(
            store.create_topic("z", 0, IndexMap::new(), |_| Ok(())),
            Err(MetadataError::InvalidPartitions(0))
        ));
    }
}
