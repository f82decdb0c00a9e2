//! Client quotas (`producer_byte_rate`, `consumer_byte_rate`, `request_percentage`), enforced
//! by each broker on what it serves, as Kafka's `ClientQuotaManager`s do.
//!
//! ```text
//!  coord /config/clients, /config/users ──watch──► ClientQuotas::table (QuotaTable)
//!                                                        │ resolve(kind, user, client id)
//!  server.rs: a request handled ──bytes / handler time──► Rate of its (user, client) tags
//!            ◄── throttle ms (0 when within the quota) ──┘
//!  answer carries throttle_time_ms; the connection reads nothing more for that long
//! ```
//!
//! Rates are measured over `quota.window.num` windows of `quota.window.size.seconds`
//! ([`rate::Rate`], Kafka's arithmetic). A rate nobody recorded to for a whole measuring span
//! holds nothing any more and is dropped, so memory follows the clients active in the last
//! span (Kafka keeps its sensors an hour; an expired rate and a fresh one measure the same).
//!
//! There is no authentication yet: every connection is the user `ANONYMOUS`, and user and
//! user/client quotas apply to it with Kafka's precedence.

pub mod entity;
pub mod rate;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use entity::{QuotaKey, QuotaTable, SensorTags, ANONYMOUS};
use rate::Rate;
use sluice_config::BrokerConfig;

/// One measured rate and when it was last recorded to.
#[derive(Debug)]
struct Sensor {
    rate: Rate,
    last_ms: u64,
}

#[derive(Debug, Default)]
struct Sensors {
    map: HashMap<(QuotaKey, SensorTags), Sensor>,
    last_sweep_ms: u64,
}

/// The quotas in force on this broker and the rates measured against them.
#[derive(Debug)]
pub struct ClientQuotas {
    table: RwLock<Arc<QuotaTable>>,
    /// A bit per [`QuotaKey`] some entity sets: without quotas of a kind, requests pay one
    /// atomic load for it.
    kinds: AtomicU8,
    sensors: Mutex<Sensors>,
    samples: u32,
    window_ms: u64,
    epoch: std::time::Instant,
}

impl ClientQuotas {
    pub fn new(config: &BrokerConfig) -> ClientQuotas {
        ClientQuotas {
            table: RwLock::default(),
            kinds: AtomicU8::new(0),
            sensors: Mutex::default(),
            samples: config.quota_window_num,
            window_ms: u64::from(config.quota_window_size_seconds) * 1000,
            epoch: std::time::Instant::now(),
        }
    }

    /// Replaces the quotas in force (coord's, see [`crate::cluster::client_quotas`]).
    pub fn set_table(&self, table: QuotaTable) {
        let mut t = self.table.write().unwrap_or_else(|e| e.into_inner());
        if **t != table {
            tracing::info!(
                entities = table.entities.len(),
                "client quotas in force changed"
            );
            let kinds = table
                .entities
                .values()
                .flat_map(|q| q.keys())
                .fold(0u8, |acc, k| acc | bit(*k));
            self.kinds.store(kinds, Ordering::Release);
            *t = Arc::new(table);
        }
    }

    pub fn table(&self) -> Arc<QuotaTable> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The span a rate is measured over at most.
    fn span_ms(&self) -> u64 {
        u64::from(self.samples) * self.window_ms
    }

    /// Records `value` (bytes, or percent-seconds of handler time) for client `client_id`
    /// against its `kind` quota; the throttle time in milliseconds, 0 when within the quota or
    /// when no quota applies.
    pub fn record(&self, kind: QuotaKey, client_id: &str, value: f64) -> u64 {
        if self.kinds.load(Ordering::Acquire) & bit(kind) == 0 {
            return 0;
        }
        self.record_at(kind, client_id, value, self.now_ms())
    }

    fn record_at(&self, kind: QuotaKey, client_id: &str, value: f64, now: u64) -> u64 {
        let Some((tags, bound)) = self.table().resolve(kind, ANONYMOUS, client_id) else {
            return 0;
        };
        let mut s = self.sensors.lock().unwrap_or_else(|e| e.into_inner());
        let span = self.span_ms();
        if now.saturating_sub(s.last_sweep_ms) >= span {
            s.map.retain(|_, x| now.saturating_sub(x.last_ms) < span);
            s.last_sweep_ms = now;
        }
        let (samples, window) = (self.samples, self.window_ms);
        let sensor = s.map.entry((kind, tags)).or_insert_with(|| Sensor {
            rate: Rate::new(samples, window),
            last_ms: now,
        });
        sensor.last_ms = now;
        sensor.rate.record_and_throttle(value, bound, now)
    }

    /// Takes back `value` recorded by [`ClientQuotas::record`] (a throttled fetch is answered
    /// empty, so its bytes do not count; Kafka's `unrecordQuotaSensor`).
    pub fn unrecord(&self, kind: QuotaKey, client_id: &str, value: f64) {
        let Some((tags, _)) = self.table().resolve(kind, ANONYMOUS, client_id) else {
            return;
        };
        let now = self.now_ms();
        let mut s = self.sensors.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sensor) = s.map.get_mut(&(kind, tags)) {
            sensor.rate.record(-value, now);
        }
    }

    /// The most a client may take in one measuring span: Kafka caps a consumer's fetch size at
    /// `quota × (quota.window.num − 1) × quota.window.size.seconds`.
    pub fn max_value_in_window(&self, kind: QuotaKey, client_id: &str) -> Option<f64> {
        if self.kinds.load(Ordering::Acquire) & bit(kind) == 0 {
            return None;
        }
        let (_, bound) = self.table().resolve(kind, ANONYMOUS, client_id)?;
        Some(bound * f64::from(self.samples.saturating_sub(1)) * (self.window_ms as f64 / 1000.0))
    }

    /// Rates held now (for tests and diagnostics).
    pub fn sensor_count(&self) -> usize {
        self.sensors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .len()
    }
}

fn bit(k: QuotaKey) -> u8 {
    1 << (k as u8)
}

/// Handler time as `request_percentage` counts it: percent of one thread per second.
pub fn percent_seconds(handler_time: std::time::Duration) -> f64 {
    handler_time.as_nanos() as f64 * 100.0 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;
    use entity::{Entity, Name};

    fn quotas_with(entity: Entity, key: QuotaKey, v: f64) -> ClientQuotas {
        let cfg = sluice_config::BrokerConfig::from_bytes(
            std::path::Path::new("server.properties"),
            b"broker.id=1\nzookeeper.connect=localhost:2181\n",
        )
        .unwrap()
        .config;
        let q = ClientQuotas::new(&cfg);
        let mut t = QuotaTable::default();
        t.entities.entry(entity).or_default().insert(key, v);
        q.set_table(t);
        q
    }

    #[test]
    fn only_the_client_over_its_quota_is_throttled() {
        let q = quotas_with(
            Entity::client(Name::Named("noisy".into())),
            QuotaKey::ProducerByteRate,
            1000.0,
        );
        // 20 kB at once from a fresh client: twice the quota over the padded 10 s window.
        assert!(q.record(QuotaKey::ProducerByteRate, "noisy", 20_000.0) > 9_000);
        assert_eq!(q.record(QuotaKey::ProducerByteRate, "quiet", 1e9), 0);
        assert_eq!(q.record(QuotaKey::ConsumerByteRate, "noisy", 1e9), 0);
        // Rates exist only where a quota applies.
        assert_eq!(q.sensor_count(), 1);
        assert_eq!(
            q.max_value_in_window(QuotaKey::ProducerByteRate, "noisy"),
            Some(10_000.0)
        );
    }

    #[test]
    fn rates_of_clients_gone_quiet_for_a_span_are_dropped() {
        let q = quotas_with(
            Entity::client(Name::Default),
            QuotaKey::ProducerByteRate,
            1e6,
        );
        for i in 0..1000 {
            q.record_at(QuotaKey::ProducerByteRate, &format!("c{i}"), 1.0, 0);
        }
        assert_eq!(q.sensor_count(), 1000);
        // One client still active 11 s later (one span of 11 windows of 1 s): the others go.
        q.record_at(QuotaKey::ProducerByteRate, "c0", 1.0, 5_000);
        q.record_at(QuotaKey::ProducerByteRate, "c0", 1.0, 11_000);
        assert_eq!(q.sensor_count(), 1);
    }
}
