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

use crate::config::{ConfigError, TopicConfig};
pub use records::MetadataRecord;

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
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicInfo>> {
        self.topics.get(name)
    }
    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Arc<TopicInfo>> {
        self.by_id.get(id)
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
        let line = record.encode_line();
        let io = |source| MetadataError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(line.as_bytes()).map_err(io)?;
        self.file.sync_data().map_err(io)
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
    topic_defaults: RwLock<TopicConfig>,
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
        })
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().clone()
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
        writer.append(&MetadataRecord::Topic {
            name: name.to_string(),
            id,
            partitions,
        })?;
        for (key, value) in &overrides {
            writer.append(&MetadataRecord::Config {
                id,
                key: key.clone(),
                value: Some(value.clone()),
            })?;
        }
        let info = Arc::new(info);
        let mut next = (*image).clone();
        next.topics.insert(info.name.clone(), info.clone());
        next.by_id.insert(id, info.clone());
        *self.image.write() = Arc::new(next);
        Ok(info)
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
        next.topics.shift_remove(&info.name);
        next.by_id.remove(&id);
        *self.image.write() = Arc::new(next);
        Ok(info)
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
            let info = Arc::new(TopicInfo {
                name: name.clone(),
                id,
                partitions,
                overrides: IndexMap::new(),
                config: defaults.clone(),
            });
            image.topics.insert(name, info.clone());
            image.by_id.insert(id, info);
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
                info.config = TopicConfig::resolve(defaults, &info.overrides).unwrap_or_else(|e| {
                    tracing::warn!(topic = %info.name, "stored topic config no longer valid ({e}); using broker defaults");
                    defaults.clone()
                });
                let info = Arc::new(info);
                image.topics.insert(info.name.clone(), info.clone());
                image.by_id.insert(id, info);
            }
        }
        MetadataRecord::DeleteTopic { id } => {
            if let Some(info) = image.by_id.remove(&id) {
                image.topics.shift_remove(&info.name);
            }
        }
        MetadataRecord::ProducerIds { .. } => {}
    }
    Ok(())
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
