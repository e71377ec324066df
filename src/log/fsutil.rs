//! Small durable-file helpers and Kafka's offset checkpoint file format:
//! ```text
//! 0                      <- version
//! 2                      <- number of entries
//! orders 0 1234          <- topic partition offset
//! orders 1 999
//! ```

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Writes `bytes` to `path` so that a crash leaves either the old or the new
/// content: temp file, fsync, rename, fsync of the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

pub fn write_checkpoint(path: &Path, entries: &[(String, i32, i64)]) -> io::Result<()> {
    let mut text = format!("0\n{}\n", entries.len());
    for (topic, partition, offset) in entries {
        text.push_str(&format!("{topic} {partition} {offset}\n"));
    }
    write_atomically(path, text.as_bytes())
}

/// Reads a checkpoint; a missing or malformed file reads as empty (callers
/// then fall back to the safe choice: recover everything).
pub fn read_checkpoint(path: &Path) -> HashMap<(String, i32), i64> {
    let Ok(text) = fs::read_to_string(path) else {
        return HashMap::new();
    };
    let mut lines = text.lines();
    if lines.next() != Some("0") {
        return HashMap::new();
    }
    let Some(count) = lines.next().and_then(|l| l.trim().parse::<usize>().ok()) else {
        return HashMap::new();
    };
    let mut out = HashMap::new();
    for line in lines.take(count) {
        let mut parts = line.split(' ');
        let (Some(topic), Some(p), Some(o), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return HashMap::new();
        };
        let (Ok(p), Ok(o)) = (p.parse(), o.parse()) else {
            return HashMap::new();
        };
        out.insert((topic.to_string(), p), o);
    }
    if out.len() != count {
        return HashMap::new();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trip_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        assert!(read_checkpoint(&path).is_empty());
        write_checkpoint(&path, &[("a".into(), 0, 5), ("b.c".into(), 3, 0)]).unwrap();
        let cp = read_checkpoint(&path);
        assert_eq!(cp.get(&("a".to_string(), 0)), Some(&5));
        assert_eq!(cp.get(&("b.c".to_string(), 3)), Some(&0));
        fs::write(&path, "0\n3\na 0 5\n").unwrap();
        assert!(read_checkpoint(&path).is_empty());
        fs::write(&path, "1\n0\n").unwrap();
        assert!(read_checkpoint(&path).is_empty());
    }
}
