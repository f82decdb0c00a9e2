//! Recovery on open: corrupt, torn and garbage tails are truncated, never served; flushed
//! segments are not rescanned; the LogManager's checkpoints and clean-shutdown marker.

mod common;

use common::*;
use sluice_log::batch::BatchHeader;
use sluice_log::{segment_file, Log, LogConfig, LogManager, TopicPartition};
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Appends batches 0..n to `<dir>/t-0`, returns the model; the log is dropped without
/// closing (as after a crash: nothing but what was already written).
fn write_log(dir: &Path, config: LogConfig, n: u64) -> Model {
    let mut log = Log::open(dir.join("t-0"), config).unwrap();
    let mut model = Model::default();
    for i in 0..n {
        let info = log.append(&batch(i), 0).unwrap();
        model.push(info.base_offset, stored(&batch(i), info.base_offset, 0));
    }
    model
}

fn flip_byte(path: &Path, pos: u64) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, pos).unwrap();
    f.write_all_at(&[b[0] ^ 0x20], pos).unwrap();
}

/// Byte position of model batch `k` within its single segment starting at 0.
fn position_of(model: &Model, k: usize) -> u64 {
    model.batches[..k].iter().map(|(_, b)| b.len() as u64).sum()
}

#[test]
fn corrupt_byte_in_the_tail_is_detected_and_truncated() {
    let d = tempdir();
    let model = write_log(d.path(), LogConfig::default(), 50);
    let seg = segment_file(&d.path().join("t-0"), 0);
    // A byte inside the records of batch 40 (past its 61-byte header).
    let pos = position_of(&model, 40) + 70;
    flip_byte(&seg, pos);
    let log = Log::open(d.path().join("t-0"), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), model.batches[40].0);
    assert_eq!(read_all(&log, 0), model.bytes()[..40].to_vec());
    assert_eq!(fs::metadata(&seg).unwrap().len(), position_of(&model, 40));
    // Appends continue at the truncation point.
    drop(log);
    let mut log = Log::open(d.path().join("t-0"), LogConfig::default()).unwrap();
    let info = log.append(&batch(1000), 0).unwrap();
    assert_eq!(info.base_offset, model.batches[40].0);
}

#[test]
fn corrupt_header_fields_are_detected() {
    // The CRC does not cover baseOffset, batchLength, epoch or magic: those are checked by
    // structure (length within the file, offsets continuing, magic 2).
    // baseOffset high and low bytes, batchLength, leader epoch, magic, CRC.
    for (field_pos, value) in [
        (0u64, 0xffu8),
        (4, 0x7f),
        (7, 0x01),
        (9, 0x7f),
        (12, 0xff),
        (16, 1),
        (17, 0),
    ] {
        let d = tempdir();
        let model = write_log(d.path(), LogConfig::default(), 20);
        let seg = segment_file(&d.path().join("t-0"), 0);
        let at = position_of(&model, 15) + field_pos;
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.write_all_at(&[value], at).unwrap();
        let log = Log::open(d.path().join("t-0"), LogConfig::default()).unwrap();
        let got = read_all(&log, 0);
        assert_eq!(got.len(), 15, "field {field_pos}: corruption found");
        assert!(
            got[..] == model.bytes()[..15],
            "field {field_pos}: a prefix"
        );
    }
}

#[test]
fn torn_and_garbage_tails_are_truncated() {
    let d = tempdir();
    let model = write_log(d.path(), LogConfig::default(), 30);
    let seg = segment_file(&d.path().join("t-0"), 0);
    // Torn: half of the last batch.
    let len = fs::metadata(&seg).unwrap().len();
    let last_len = model.batches[29].1.len() as u64;
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - last_len / 2)
        .unwrap();
    let log = Log::open(d.path().join("t-0"), LogConfig::default()).unwrap();
    assert_eq!(read_all(&log, 0), model.bytes()[..29].to_vec());
    drop(log);
    // Garbage: zeros after the data (a file extended but never written, after power loss).
    let f = OpenOptions::new().write(true).open(&seg).unwrap();
    let len = f.metadata().unwrap().len();
    f.write_all_at(&[0u8; 5000], len).unwrap();
    let log = Log::open(d.path().join("t-0"), LogConfig::default()).unwrap();
    assert_eq!(read_all(&log, 0), model.bytes()[..29].to_vec());
    assert_eq!(fs::metadata(&seg).unwrap().len(), len);
}

#[test]
fn corruption_in_an_unflushed_middle_segment_drops_the_rest() {
    let d = tempdir();
    let model = write_log(d.path(), small_config(), 100);
    // Without checkpoints, every segment counts as unflushed.
    for f in [
        "recovery-point-offset-checkpoint",
        "log-start-offset-checkpoint",
    ] {
        let _ = fs::remove_file(d.path().join(f));
    }
    let dir = d.path().join("t-0");
    let log = Log::open(&dir, small_config()).unwrap();
    let bases = log.segment_base_offsets();
    drop(log);
    assert!(bases.len() > 4);
    let victim = bases[2];
    flip_byte(&segment_file(&dir, victim), 100);
    let log = Log::open(&dir, small_config()).unwrap();
    let kept = log.segment_base_offsets();
    assert_eq!(*kept.last().unwrap(), victim, "later segments deleted");
    let got = read_all(&log, 0);
    assert!(got.len() < model.batches.len());
    assert_eq!(got[..], model.bytes()[..got.len()]);
    assert_eq!(log.log_end_offset(), model.batches[got.len()].0);
    for b in &bases[3..] {
        assert!(!segment_file(&dir, *b).exists());
    }
}

#[test]
fn flushed_segments_are_not_rescanned() {
    let d = tempdir();
    let model = write_log(d.path(), small_config(), 100);
    let dir = d.path().join("t-0");
    let cp = fs::read_to_string(d.path().join("recovery-point-offset-checkpoint")).unwrap();
    let rp: u64 = cp
        .lines()
        .nth(2)
        .unwrap()
        .split(' ')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert!(rp > 0, "rolls persist the recovery point: {cp}");
    // Damage the first segment's records (below the recovery point): recovery does not look.
    flip_byte(&segment_file(&dir, 0), 100);
    let log = Log::open(&dir, small_config()).unwrap();
    assert_eq!(log.log_end_offset(), model.end());
    assert_eq!(log.segment_base_offsets()[0], 0);
}

#[test]
fn recovery_starts_at_the_checkpointed_recovery_point() {
    let d = tempdir();
    let dir = d.path().join("t-0");
    let mut log = Log::open(&dir, LogConfig::default()).unwrap();
    let mut model = Model::default();
    for i in 0..300 {
        let info = log.append(&batch(i), 0).unwrap();
        model.push(info.base_offset, stored(&batch(i), info.base_offset, 0));
    }
    // close: flush and checkpoint (recovery point = 300 batches in), no clean marker.
    log.close().unwrap();
    let mut log = Log::open(&dir, LogConfig::default()).unwrap();
    for i in 300..400 {
        let info = log.append(&batch(i), 0).unwrap();
        model.push(info.base_offset, stored(&batch(i), info.base_offset, 0));
    }
    drop(log); // crash
    let seg = segment_file(&dir, 0);
    // Below the recovery point: not re-read, so not noticed (it was fsynced and verified on
    // append; consumers check CRCs). Above it: found and cut.
    flip_byte(&seg, position_of(&model, 100) + 70);
    flip_byte(&seg, position_of(&model, 350) + 70);
    let log = Log::open(&dir, LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), model.batches[350].0);
    assert_eq!(log.segment_base_offsets(), vec![0]);
    // The index built from the old index plus the scan still finds every batch and timestamp.
    for (k, (base, bytes)) in model.batches[..350].iter().enumerate().step_by(3) {
        let s = log.read(*base, 1, None).unwrap();
        assert_eq!(s.first_offset, *base);
        if k != 100 {
            assert_eq!(s.read_to_vec().unwrap(), *bytes);
        }
        let ts = BatchHeader::parse(bytes).unwrap().base_timestamp;
        assert_eq!(log.offset_for_timestamp(ts).unwrap().unwrap().offset, *base);
    }
    assert_eq!(log.offset_for_timestamp(i64::MAX).unwrap(), None);
}

#[test]
fn unclean_restart_recovers_the_last_segment_only() {
    let d = tempdir();
    let mut model = write_log(d.path(), small_config(), 80);
    let dir = d.path().join("t-0");
    let mut log = Log::open(&dir, small_config()).unwrap();
    assert_eq!(read_all(&log, 0), model.bytes());
    for i in 80..90 {
        let info = log.append(&batch(i), 0).unwrap();
        model.push(info.base_offset, stored(&batch(i), info.base_offset, 0));
    }
    let last = *log.segment_base_offsets().last().unwrap();
    drop(log);
    // Tear the active segment.
    let seg = segment_file(&dir, last);
    let len = fs::metadata(&seg).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let log = Log::open(&dir, small_config()).unwrap();
    let got = read_all(&log, 0);
    assert_eq!(got[..], model.bytes()[..model.batches.len() - 1]);
}

/// A log writer into a shared buffer.
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn log_manager_recovers_several_dirs_and_shuts_down_cleanly() {
    let root = tempdir();
    let dirs = vec![root.path().join("d1"), root.path().join("d2")];
    let mgr = LogManager::open(&dirs, 2, |_| small_config()).unwrap();
    let mut models = Vec::new();
    for p in 0..6 {
        let tp = TopicPartition::new("events", p);
        let log = mgr.get_or_create(&tp, small_config()).unwrap();
        let mut log = log.write().unwrap();
        let mut model = Model::default();
        for i in 0..(20 + p as u64 * 7) {
            let info = log.append(&batch(i), 1).unwrap();
            model.push(info.base_offset, stored(&batch(i), info.base_offset, 1));
        }
        log.set_high_watermark(model.end());
        models.push((tp, model));
    }
    // Balanced over the two directories.
    let in_d1 = models
        .iter()
        .filter(|(tp, _)| mgr.dir_of(tp).unwrap() == dirs[0])
        .count();
    assert_eq!(in_d1, 3);
    mgr.checkpoint().unwrap();
    let hw = fs::read_to_string(dirs[0].join("replication-offset-checkpoint")).unwrap();
    assert!(hw.starts_with("0\n3\nevents "), "{hw}");
    mgr.shutdown().unwrap();
    for d in &dirs {
        assert!(d.join(".kafka_cleanshutdown").exists());
    }

    // What the operator sees: a line per directory once its logs are loaded.
    let said = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer({
            let said = said.clone();
            move || Captured(said.clone())
        })
        .finish();
    let mgr = tracing::subscriber::with_default(subscriber, || {
        LogManager::open(&dirs, 2, |_| small_config()).unwrap()
    });
    let said = String::from_utf8(said.lock().unwrap().clone()).unwrap();
    for d in &dirs {
        let line = said
            .lines()
            .find(|l| l.contains("logs loaded") && l.contains(&*d.display().to_string()))
            .unwrap_or_else(|| panic!("no \"logs loaded\" line for {}:\n{said}", d.display()));
        assert!(line.contains("partitions=3"), "{line}");
    }
    for d in &dirs {
        assert!(
            !d.join(".kafka_cleanshutdown").exists(),
            "marker consumed at open"
        );
    }
    assert_eq!(mgr.partitions().len(), 6);
    for (tp, model) in &models {
        let log = mgr.get(tp).unwrap();
        let log = log.read().unwrap();
        assert_eq!(read_all(&log, 0), model.bytes());
        assert_eq!(log.high_watermark(), model.end());
        assert_eq!(log.recovery_point(), model.end());
    }
    // Deleting a partition removes its directory and checkpoint entries.
    let victim = &models[0].0;
    let victim_dir = mgr.dir_of(victim).unwrap();
    mgr.delete(victim).unwrap();
    assert!(mgr.get(victim).is_none());
    assert!(!victim_dir.join(victim.dir_name()).exists());
    let cp = fs::read_to_string(victim_dir.join("recovery-point-offset-checkpoint")).unwrap();
    assert!(!cp.contains("events 0 "), "{cp}");
    drop(mgr);

    // Crash (no shutdown): opens again, all data there.
    let mgr = LogManager::open(&dirs, 1, |_| small_config()).unwrap();
    assert_eq!(mgr.partitions().len(), 5);
    assert!(mgr.offline_dirs().is_empty());
}

#[test]
fn log_manager_ignores_foreign_entries() {
    let root = tempdir();
    let d = root.path().join("d");
    fs::create_dir_all(d.join("not_a_partition")).unwrap();
    fs::create_dir_all(d.join("t-0.123-delete")).unwrap();
    fs::write(d.join("meta.properties"), "version=0\n").unwrap();
    let mgr = LogManager::open(std::slice::from_ref(&d), 1, |_| LogConfig::default()).unwrap();
    assert!(mgr.partitions().is_empty());
    assert!(!d.join("t-0.123-delete").exists());
    assert!(d.join("not_a_partition").exists());
    let h = BatchHeader::parse(&batch(1)).unwrap();
    assert_eq!(h.record_count, 2);
}
