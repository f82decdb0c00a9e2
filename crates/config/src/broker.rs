//! `server.properties` → [`BrokerConfig`]: the broker's settings with Kafka's keys and defaults,
//! including the deprecated `port` / `host.name` pair that older guides still use.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use crate::diag::{ConfigError, Diagnostics, Loaded};
use crate::properties::{Entry, Properties};
use crate::reader::Reader;
use crate::{is_valid_host, read_file};

/// A listener or advertised listener: `NAME://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    /// `None` means every interface (for `listeners`) or this machine's host name (for
    /// `advertised.listeners`), as in Kafka.
    pub host: Option<String>,
    pub port: u16,
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match &self.host {
            Some(h) if h.contains(':') => format!("[{h}]"),
            Some(h) => h.clone(),
            None => String::new(),
        };
        write!(f, "{}://{}:{}", self.name, host, self.port)
    }
}

/// `metrics.prometheus.listener=HOST:PORT`: where the broker serves `GET /metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsListener {
    /// A host name or IP address (IPv6 without brackets); `0.0.0.0` for every interface.
    pub host: String,
    /// 0 takes any free port (logged at start).
    pub port: u16,
}

impl fmt::Display for MetricsListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// `zookeeper.connect`: the coordinator addresses and the optional chroot path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZkConnect {
    pub servers: Vec<(String, u16)>,
    /// `/kafka` in `host:2181/kafka`; `None` for the root.
    pub chroot: Option<String>,
}

impl fmt::Display for ZkConnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts: Vec<String> = self
            .servers
            .iter()
            .map(|(h, p)| format!("{h}:{p}"))
            .collect();
        write!(
            f,
            "{}{}",
            hosts.join(","),
            self.chroot.as_deref().unwrap_or("")
        )
    }
}

/// The broker's validated settings. Durations are milliseconds; `None` retention means unlimited.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub path: PathBuf,
    /// `-1` asks the coordinator for a generated id.
    pub broker_id: i32,
    pub listeners: Vec<Listener>,
    pub advertised_listeners: Vec<Listener>,
    pub listener_security_protocol_map: BTreeMap<String, String>,
    /// The listener brokers use for each other (replica fetchers, the controller's probes):
    /// `inter.broker.listener.name`, else the listener named after
    /// `security.inter.broker.protocol`, else the one named PLAINTEXT, else the first.
    pub inter_broker_listener_name: String,
    /// The TLS settings of each SSL listener, by listener name.
    pub ssl: BTreeMap<String, crate::ssl::SslSettings>,
    pub delete_topic_enable: bool,
    pub num_network_threads: u32,
    pub num_io_threads: u32,
    /// `-1` keeps the operating system's default.
    pub socket_send_buffer_bytes: i32,
    pub socket_receive_buffer_bytes: i32,
    pub socket_request_max_bytes: i32,
    /// `max.connections`: connections open at once on the client listeners; at the limit, new
    /// ones wait in the listen backlog until one closes (the inter-broker listener is exempt
    /// when it is a listener of its own).
    pub max_connections: i32,
    /// `max.connections.per.ip`: connections from one address; more are closed at once.
    pub max_connections_per_ip: i32,
    /// `max.connections.per.ip.overrides`: `address:count` pairs replacing the limit above.
    pub max_connections_per_ip_overrides: BTreeMap<String, i32>,
    /// `connections.max.idle.ms`: a connection with nothing to read or write for this long
    /// is closed.
    pub connections_max_idle_ms: i64,
    /// `queued.max.requests`: requests read whole and not yet through their handler, over
    /// all client connections; at the limit a connection holds its next request back.
    pub queued_max_requests: i32,
    /// `queued.max.request.bytes`: frame bytes of the requests being read or handled, over all
    /// client connections; `None` (any value up to 0, -1 by default) for no limit.
    pub queued_max_request_bytes: Option<i64>,
    /// `quota.window.num`: client quota rates are measured over this many samples...
    pub quota_window_num: u32,
    /// ...of `quota.window.size.seconds` each (Kafka's 11 of 1 s by default).
    pub quota_window_size_seconds: u32,
    pub log_dirs: Vec<PathBuf>,
    pub num_partitions: i32,
    pub num_recovery_threads_per_data_dir: u32,
    pub offsets_topic_replication_factor: i16,
    pub offsets_topic_num_partitions: i32,
    pub transaction_state_log_replication_factor: i16,
    pub transaction_state_log_min_isr: i32,
    pub transaction_state_log_num_partitions: i32,
    pub log_retention_ms: Option<i64>,
    pub log_retention_bytes: Option<i64>,
    pub log_segment_bytes: i32,
    pub log_roll_ms: i64,
    pub log_retention_check_interval_ms: i64,
    pub log_flush_interval_messages: Option<i64>,
    pub log_flush_interval_ms: Option<i64>,
    /// `log.message.timestamp.type`: `CreateTime` (the producer's) or `LogAppendTime` (the
    /// broker stamps each batch when it appends it).
    pub log_message_timestamp_type: String,
    /// `compression.type`: `producer` (batches stored as sent) or the codec every batch is
    /// re-encoded in (`uncompressed`, `gzip`, `snappy`, `lz4`, `zstd`).
    pub compression_type: String,
    pub zookeeper_connect: ZkConnect,
    pub zookeeper_connection_timeout_ms: u32,
    pub zookeeper_session_timeout_ms: u32,
    pub group_initial_rebalance_delay_ms: u32,
    pub group_min_session_timeout_ms: u32,
    pub group_max_session_timeout_ms: u32,
    pub default_replication_factor: i16,
    pub min_insync_replicas: i32,
    pub unclean_leader_election_enable: bool,
    pub auto_create_topics_enable: bool,
    pub message_max_bytes: i32,
    pub replica_lag_time_max_ms: i64,
    pub offsets_retention_minutes: i64,
    /// Follower fetchers per source broker.
    pub num_replica_fetchers: u32,
    pub replica_fetch_max_bytes: i32,
    pub replica_fetch_min_bytes: i32,
    pub replica_fetch_wait_max_ms: i32,
    pub replica_fetch_response_max_bytes: i32,
    pub replica_fetch_backoff_ms: i32,
    pub replica_socket_timeout_ms: i32,
    /// On SIGTERM, ask the controller to move this broker's leaderships away first.
    pub controlled_shutdown_enable: bool,
    pub auto_leader_rebalance_enable: bool,
    pub leader_imbalance_check_interval_seconds: u32,
    pub leader_imbalance_per_broker_percentage: u32,
    /// `metrics.prometheus.listener`: the Prometheus endpoint, off (`None`) unless set.
    pub metrics_prometheus_listener: Option<MetricsListener>,
}

const MS_PER_HOUR: i64 = 3_600_000;
const MS_PER_MINUTE: i64 = 60_000;

impl BrokerConfig {
    /// Reads and validates a `server.properties` file.
    pub fn load(path: impl AsRef<Path>) -> Result<Loaded<BrokerConfig>, ConfigError> {
        let path = path.as_ref();
        let bytes = read_file(path)?;
        Self::from_bytes(path, &bytes)
    }

    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Loaded<BrokerConfig>, ConfigError> {
        let mut diags = Diagnostics::default();
        let props = Properties::parse(path, bytes, &mut diags);
        let (config, diags) = Self::from_properties(&props, diags);
        match config {
            Some(config) if diags.errors.is_empty() => Ok(Loaded {
                config,
                warnings: diags.warnings,
            }),
            _ => Err(ConfigError::Invalid {
                errors: diags.errors,
                warnings: diags.warnings,
            }),
        }
    }

    fn from_properties(
        props: &Properties,
        diags: Diagnostics,
    ) -> (Option<BrokerConfig>, Diagnostics) {
        let mut r = Reader::new(props, diags);
        if props.is_empty() && r.diags.errors.is_empty() {
            r.missing(
                "zookeeper.connect",
                "the file has no settings (it is empty or all comments); expected at least broker.id and zookeeper.connect",
            );
            return (None, r.diags);
        }

        let broker_id = r.number("broker.id", -1i32, -1, i32::MAX);
        let protocol_map = parse_protocol_map(&mut r);
        let listeners = parse_listener_settings(&mut r, &protocol_map);
        let advertised_listeners = parse_advertised(&mut r, &listeners, &protocol_map);
        let inter_broker_listener_name = parse_inter_broker(&mut r, &listeners, &protocol_map);
        let mut ssl = BTreeMap::new();
        if let Some(at) = props.get("listeners") {
            for l in &listeners {
                if protocol_map.get(&l.name).map(String::as_str) == Some("SSL") {
                    if let Some(s) = crate::ssl::parse(&mut r, &l.name, at) {
                        ssl.insert(l.name.clone(), s);
                    }
                }
            }
        }
        let names: Vec<String> = listeners.iter().map(|l| l.name.clone()).collect();
        crate::ssl::finish(&mut r, &names);

        let delete_topic_enable = r.boolean("delete.topic.enable", true);
        let num_network_threads = r.number("num.network.threads", 3u32, 1, 1024);
        let num_io_threads = r.number("num.io.threads", 8u32, 1, 1024);
        let socket_send_buffer_bytes =
            r.number("socket.send.buffer.bytes", 102_400i32, -1, i32::MAX);
        let socket_receive_buffer_bytes =
            r.number("socket.receive.buffer.bytes", 102_400i32, -1, i32::MAX);
        let socket_request_max_bytes =
            r.number("socket.request.max.bytes", 104_857_600i32, 1, i32::MAX);
        let max_connections = r.number("max.connections", i32::MAX, 0, i32::MAX);
        let max_connections_per_ip = r.number("max.connections.per.ip", i32::MAX, 0, i32::MAX);
        let mut max_connections_per_ip_overrides = BTreeMap::new();
        if let Some(list) = r.string("max.connections.per.ip.overrides") {
            for pair in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                match pair
                    .rsplit_once(':')
                    .and_then(|(host, n)| Some((host.trim(), n.trim().parse::<i32>().ok()?)))
                {
                    Some((host, n)) if n >= 0 && !host.is_empty() => {
                        max_connections_per_ip_overrides.insert(host.to_string(), n);
                    }
                    _ => {
                        let e = props
                            .get("max.connections.per.ip.overrides")
                            .cloned()
                            .expect("just read");
                        r.error(
                            &e,
                            format!("`{pair}` is not `address:count` (e.g. 10.0.0.5:200)"),
                        );
                    }
                }
            }
        }
        if max_connections_per_ip == 0 && max_connections_per_ip_overrides.is_empty() {
            if let Some(e) = props.get("max.connections.per.ip").cloned() {
                r.error(
                    &e,
                    "0 refuses every client; set max.connections.per.ip.overrides for the addresses allowed",
                );
            }
        }
        let connections_max_idle_ms = r.number("connections.max.idle.ms", 600_000i64, 1, i64::MAX);
        let queued_max_requests = r.number("queued.max.requests", 500i32, 1, i32::MAX);
        let queued_max_request_bytes =
            Some(r.number("queued.max.request.bytes", -1i64, i64::MIN, i64::MAX))
                .filter(|b| *b > 0);
        // As Kafka requires: a pool smaller than the largest request would hold some back
        // until the broker is otherwise idle.
        if let Some(pool) = queued_max_request_bytes {
            if pool < i64::from(socket_request_max_bytes) {
                if let Some(e) = props.get("queued.max.request.bytes") {
                    r.error(e, format!("must be at least socket.request.max.bytes ({socket_request_max_bytes}), or -1 for no limit"));
                }
            }
        }
        let quota_window_num = r.number("quota.window.num", 11u32, 1, 3600);
        let quota_window_size_seconds = r.number("quota.window.size.seconds", 1u32, 1, 3600);

        let log_dirs = match r.string("log.dirs").or_else(|| r.string("log.dir")) {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect(),
            None => vec![PathBuf::from("/tmp/kafka-logs")],
        };
        if log_dirs.is_empty() {
            if let Some(e) = props.get("log.dirs") {
                r.error(e, "expected a comma-separated list of directories");
            }
        }
        let num_partitions = r.number("num.partitions", 1i32, 1, 1_000_000);
        let num_recovery_threads_per_data_dir =
            r.number("num.recovery.threads.per.data.dir", 1u32, 1, 1024);
        let offsets_topic_replication_factor =
            r.number("offsets.topic.replication.factor", 3i16, 1, i16::MAX);
        let offsets_topic_num_partitions =
            r.number("offsets.topic.num.partitions", 50i32, 1, 100_000);
        let transaction_state_log_replication_factor = r.number(
            "transaction.state.log.replication.factor",
            3i16,
            1,
            i16::MAX,
        );
        let transaction_state_log_min_isr =
            r.number("transaction.state.log.min.isr", 2i32, 1, i32::MAX);
        let transaction_state_log_num_partitions =
            r.number("transaction.state.log.num.partitions", 50i32, 1, 100_000);

        // Retention: ms over minutes over hours, as Kafka; -1 (any negative in ms) is unlimited.
        let retention_ms = r.opt_number::<i64>("log.retention.ms", -1, i64::MAX);
        let retention_minutes =
            r.opt_number::<i64>("log.retention.minutes", -1, i64::MAX / MS_PER_MINUTE);
        let retention_hours = r.number("log.retention.hours", 168i64, -1, i64::MAX / MS_PER_HOUR);
        let log_retention_ms = match (retention_ms, retention_minutes) {
            (Some(ms), _) => ms,
            (None, Some(min)) => min.saturating_mul(MS_PER_MINUTE),
            (None, None) => retention_hours.saturating_mul(MS_PER_HOUR),
        };
        let log_retention_ms = (log_retention_ms >= 0).then_some(log_retention_ms);
        let log_retention_bytes = r.number("log.retention.bytes", -1i64, -1, i64::MAX);
        let log_retention_bytes = (log_retention_bytes >= 0).then_some(log_retention_bytes);
        let log_segment_bytes = r.number("log.segment.bytes", 1_073_741_824i32, 14, i32::MAX);
        let roll_ms = r.opt_number::<i64>("log.roll.ms", 1, i64::MAX);
        let roll_hours = r.number("log.roll.hours", 168i64, 1, i64::MAX / MS_PER_HOUR);
        let log_roll_ms = roll_ms.unwrap_or(roll_hours.saturating_mul(MS_PER_HOUR));
        let log_retention_check_interval_ms =
            r.number("log.retention.check.interval.ms", 300_000i64, 1, i64::MAX);
        let log_flush_interval_messages =
            r.opt_number::<i64>("log.flush.interval.messages", 1, i64::MAX);
        let log_flush_interval_ms = r.opt_number::<i64>("log.flush.interval.ms", 0, i64::MAX);

        let zookeeper_connect = match r.entry("zookeeper.connect") {
            Some(e) => match parse_zk_connect(&e.value) {
                Ok(z) => Some(z),
                Err(msg) => {
                    r.error(e, msg);
                    None
                }
            },
            None => {
                r.missing(
                    "zookeeper.connect",
                    "not set; expected the coordinator addresses, e.g. zookeeper.connect=localhost:2181,localhost:2182,localhost:2183",
                );
                None
            }
        };
        let zookeeper_session_timeout_ms =
            r.number("zookeeper.session.timeout.ms", 18_000u32, 1, u32::MAX);
        let zookeeper_connection_timeout_ms = r.number(
            "zookeeper.connection.timeout.ms",
            zookeeper_session_timeout_ms,
            1,
            u32::MAX,
        );

        let group_initial_rebalance_delay_ms =
            r.number("group.initial.rebalance.delay.ms", 3000u32, 0, u32::MAX);
        let group_min_session_timeout_ms =
            r.number("group.min.session.timeout.ms", 6000u32, 1, u32::MAX);
        let group_max_session_timeout_ms =
            r.number("group.max.session.timeout.ms", 1_800_000u32, 1, u32::MAX);
        let default_replication_factor = r.number("default.replication.factor", 1i16, 1, i16::MAX);
        let min_insync_replicas = r.number("min.insync.replicas", 1i32, 1, i32::MAX);
        let unclean_leader_election_enable = r.boolean("unclean.leader.election.enable", false);
        let log_message_timestamp_type = r
            .parse_with::<String>(
                "log.message.timestamp.type",
                "CreateTime or LogAppendTime",
                |v| v == "CreateTime" || v == "LogAppendTime",
            )
            .unwrap_or_else(|| "CreateTime".to_string());
        let compression_type = r
            .parse_with::<String>(
                "compression.type",
                "one of producer, uncompressed, gzip, snappy, lz4, zstd",
                |v| {
                    ["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]
                        .contains(&v.as_str())
                },
            )
            .unwrap_or_else(|| "producer".to_string());
        let auto_create_topics_enable = r.boolean("auto.create.topics.enable", true);
        let message_max_bytes = r.number("message.max.bytes", 1_048_588i32, 0, i32::MAX);
        let replica_lag_time_max_ms = r.number("replica.lag.time.max.ms", 30_000i64, 1, i64::MAX);
        let offsets_retention_minutes =
            r.number("offsets.retention.minutes", 10_080i64, 1, i64::MAX);
        let num_replica_fetchers = r.number("num.replica.fetchers", 1u32, 1, 64);
        let replica_fetch_max_bytes =
            r.number("replica.fetch.max.bytes", 1_048_576i32, 1, i32::MAX);
        let replica_fetch_min_bytes = r.number("replica.fetch.min.bytes", 1i32, 1, i32::MAX);
        let replica_fetch_wait_max_ms = r.number("replica.fetch.wait.max.ms", 500i32, 0, 60_000);
        let replica_fetch_response_max_bytes = r.number(
            "replica.fetch.response.max.bytes",
            10_485_760i32,
            1,
            i32::MAX,
        );
        let replica_fetch_backoff_ms = r.number("replica.fetch.backoff.ms", 1000i32, 0, i32::MAX);
        let replica_socket_timeout_ms =
            r.number("replica.socket.timeout.ms", 30_000i32, 1, i32::MAX);
        let controlled_shutdown_enable = r.boolean("controlled.shutdown.enable", true);
        let auto_leader_rebalance_enable = r.boolean("auto.leader.rebalance.enable", true);
        let leader_imbalance_check_interval_seconds = r.number(
            "leader.imbalance.check.interval.seconds",
            300u32,
            1,
            u32::MAX,
        );
        let leader_imbalance_per_broker_percentage =
            r.number("leader.imbalance.per.broker.percentage", 10u32, 0, 100);
        let metrics_prometheus_listener = parse_metrics_listener(&mut r, &listeners);
        if i64::from(replica_fetch_wait_max_ms) > replica_lag_time_max_ms {
            if let Some(e) = props.get("replica.fetch.wait.max.ms") {
                r.error(e, format!("must not exceed replica.lag.time.max.ms ({replica_lag_time_max_ms}), or followers would drop out of the ISR while waiting"));
            }
        }
        if socket_request_max_bytes < message_max_bytes {
            if let Some(e) = props.get("socket.request.max.bytes") {
                r.warn(e, format!("smaller than message.max.bytes ({message_max_bytes}); the largest records cannot be sent"));
            }
        }

        r.accept(&[
            "port",
            "host.name",
            "advertised.port",
            "advertised.host.name",
        ]);
        r.recognised_without_effect(
            &[
                "broker.rack",
                "broker.id.generation.enable",
                "reserved.broker.max.id",
                "log.cleanup.policy",
                "log.cleaner.enable",
                "log.cleaner.threads",
                "log.index.size.max.bytes",
                "log.index.interval.bytes",
                "log.message.format.version",
                "log.flush.scheduler.interval.ms",
                "log.flush.offset.checkpoint.interval.ms",
                "log.segment.delete.delay.ms",
                "inter.broker.protocol.version",
                "zookeeper.set.acl",
                "zookeeper.max.in.flight.requests",
                "offsets.commit.timeout.ms",
                "offsets.load.buffer.size",
                "offsets.retention.check.interval.ms",
                "transaction.max.timeout.ms",
                "group.max.size",
                "metric.reporters",
            ],
            "the broker manages this itself or does not support it yet",
        );

        let diags = r.finish("broker");
        let (Some(zookeeper_connect), true) = (zookeeper_connect, diags.errors.is_empty()) else {
            return (None, diags);
        };
        let config = BrokerConfig {
            path: props.path.clone(),
            broker_id,
            listeners,
            advertised_listeners,
            listener_security_protocol_map: protocol_map,
            inter_broker_listener_name,
            ssl,
            delete_topic_enable,
            num_network_threads,
            num_io_threads,
            socket_send_buffer_bytes,
            socket_receive_buffer_bytes,
            socket_request_max_bytes,
            max_connections,
            max_connections_per_ip,
            max_connections_per_ip_overrides,
            connections_max_idle_ms,
            queued_max_requests,
            queued_max_request_bytes,
            quota_window_num,
            quota_window_size_seconds,
            log_dirs,
            num_partitions,
            num_recovery_threads_per_data_dir,
            offsets_topic_replication_factor,
            offsets_topic_num_partitions,
            transaction_state_log_replication_factor,
            transaction_state_log_min_isr,
            transaction_state_log_num_partitions,
            log_retention_ms,
            log_retention_bytes,
            log_segment_bytes,
            log_roll_ms,
            log_retention_check_interval_ms,
            log_flush_interval_messages,
            log_flush_interval_ms,
            log_message_timestamp_type,
            compression_type,
            zookeeper_connect,
            zookeeper_connection_timeout_ms,
            zookeeper_session_timeout_ms,
            group_initial_rebalance_delay_ms,
            group_min_session_timeout_ms,
            group_max_session_timeout_ms,
            default_replication_factor,
            min_insync_replicas,
            unclean_leader_election_enable,
            auto_create_topics_enable,
            message_max_bytes,
            replica_lag_time_max_ms,
            offsets_retention_minutes,
            num_replica_fetchers,
            replica_fetch_max_bytes,
            replica_fetch_min_bytes,
            replica_fetch_wait_max_ms,
            replica_fetch_response_max_bytes,
            replica_fetch_backoff_ms,
            replica_socket_timeout_ms,
            controlled_shutdown_enable,
            auto_leader_rebalance_enable,
            leader_imbalance_check_interval_seconds,
            leader_imbalance_per_broker_percentage,
            metrics_prometheus_listener,
        };
        (Some(config), diags)
    }

    /// The effective settings, defaults included, as `key=value` pairs.
    pub fn effective(&self) -> Vec<(String, String)> {
        fn list<T: fmt::Display>(items: &[T]) -> String {
            items
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        }
        fn opt(v: Option<i64>) -> String {
            v.map_or_else(|| "-1".to_string(), |v| v.to_string())
        }
        let map: Vec<String> = self
            .listener_security_protocol_map
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        let dirs: Vec<String> = self
            .log_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        [
            ("broker.id", self.broker_id.to_string()),
            ("listeners", list(&self.listeners)),
            ("advertised.listeners", list(&self.advertised_listeners)),
            ("listener.security.protocol.map", map.join(",")),
            (
                "inter.broker.listener.name",
                self.inter_broker_listener_name.clone(),
            ),
            ("delete.topic.enable", self.delete_topic_enable.to_string()),
            ("num.network.threads", self.num_network_threads.to_string()),
            ("num.io.threads", self.num_io_threads.to_string()),
            (
                "socket.send.buffer.bytes",
                self.socket_send_buffer_bytes.to_string(),
            ),
            (
                "socket.receive.buffer.bytes",
                self.socket_receive_buffer_bytes.to_string(),
            ),
            (
                "socket.request.max.bytes",
                self.socket_request_max_bytes.to_string(),
            ),
            ("max.connections", self.max_connections.to_string()),
            (
                "max.connections.per.ip",
                self.max_connections_per_ip.to_string(),
            ),
            (
                "max.connections.per.ip.overrides",
                self.max_connections_per_ip_overrides
                    .iter()
                    .map(|(h, n)| format!("{h}:{n}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                "connections.max.idle.ms",
                self.connections_max_idle_ms.to_string(),
            ),
            ("queued.max.requests", self.queued_max_requests.to_string()),
            (
                "queued.max.request.bytes",
                self.queued_max_request_bytes.unwrap_or(-1).to_string(),
            ),
            ("quota.window.num", self.quota_window_num.to_string()),
            (
                "quota.window.size.seconds",
                self.quota_window_size_seconds.to_string(),
            ),
            ("log.dirs", dirs.join(",")),
            ("num.partitions", self.num_partitions.to_string()),
            (
                "num.recovery.threads.per.data.dir",
                self.num_recovery_threads_per_data_dir.to_string(),
            ),
            (
                "offsets.topic.replication.factor",
                self.offsets_topic_replication_factor.to_string(),
            ),
            (
                "offsets.topic.num.partitions",
                self.offsets_topic_num_partitions.to_string(),
            ),
            (
                "transaction.state.log.replication.factor",
                self.transaction_state_log_replication_factor.to_string(),
            ),
            (
                "transaction.state.log.min.isr",
                self.transaction_state_log_min_isr.to_string(),
            ),
            (
                "transaction.state.log.num.partitions",
                self.transaction_state_log_num_partitions.to_string(),
            ),
            ("log.retention.ms", opt(self.log_retention_ms)),
            ("log.retention.bytes", opt(self.log_retention_bytes)),
            ("log.segment.bytes", self.log_segment_bytes.to_string()),
            ("log.roll.ms", self.log_roll_ms.to_string()),
            (
                "log.retention.check.interval.ms",
                self.log_retention_check_interval_ms.to_string(),
            ),
            (
                "log.flush.interval.messages",
                self.log_flush_interval_messages
                    .map_or_else(|| i64::MAX.to_string(), |v| v.to_string()),
            ),
            (
                "log.flush.interval.ms",
                self.log_flush_interval_ms
                    .map_or_else(|| "none".to_string(), |v| v.to_string()),
            ),
            (
                "log.message.timestamp.type",
                self.log_message_timestamp_type.clone(),
            ),
            ("compression.type", self.compression_type.clone()),
            ("zookeeper.connect", self.zookeeper_connect.to_string()),
            (
                "zookeeper.connection.timeout.ms",
                self.zookeeper_connection_timeout_ms.to_string(),
            ),
            (
                "zookeeper.session.timeout.ms",
                self.zookeeper_session_timeout_ms.to_string(),
            ),
            (
                "group.initial.rebalance.delay.ms",
                self.group_initial_rebalance_delay_ms.to_string(),
            ),
            (
                "group.min.session.timeout.ms",
                self.group_min_session_timeout_ms.to_string(),
            ),
            (
                "group.max.session.timeout.ms",
                self.group_max_session_timeout_ms.to_string(),
            ),
            (
                "default.replication.factor",
                self.default_replication_factor.to_string(),
            ),
            ("min.insync.replicas", self.min_insync_replicas.to_string()),
            (
                "unclean.leader.election.enable",
                self.unclean_leader_election_enable.to_string(),
            ),
            (
                "auto.create.topics.enable",
                self.auto_create_topics_enable.to_string(),
            ),
            ("message.max.bytes", self.message_max_bytes.to_string()),
            (
                "replica.lag.time.max.ms",
                self.replica_lag_time_max_ms.to_string(),
            ),
            (
                "offsets.retention.minutes",
                self.offsets_retention_minutes.to_string(),
            ),
            (
                "num.replica.fetchers",
                self.num_replica_fetchers.to_string(),
            ),
            (
                "replica.fetch.max.bytes",
                self.replica_fetch_max_bytes.to_string(),
            ),
            (
                "replica.fetch.min.bytes",
                self.replica_fetch_min_bytes.to_string(),
            ),
            (
                "replica.fetch.wait.max.ms",
                self.replica_fetch_wait_max_ms.to_string(),
            ),
            (
                "replica.fetch.response.max.bytes",
                self.replica_fetch_response_max_bytes.to_string(),
            ),
            (
                "replica.fetch.backoff.ms",
                self.replica_fetch_backoff_ms.to_string(),
            ),
            (
                "replica.socket.timeout.ms",
                self.replica_socket_timeout_ms.to_string(),
            ),
            (
                "controlled.shutdown.enable",
                self.controlled_shutdown_enable.to_string(),
            ),
            (
                "auto.leader.rebalance.enable",
                self.auto_leader_rebalance_enable.to_string(),
            ),
            (
                "leader.imbalance.check.interval.seconds",
                self.leader_imbalance_check_interval_seconds.to_string(),
            ),
            (
                "leader.imbalance.per.broker.percentage",
                self.leader_imbalance_per_broker_percentage.to_string(),
            ),
            (
                "metrics.prometheus.listener",
                // Empty: off (the key's default).
                self.metrics_prometheus_listener
                    .as_ref()
                    .map_or_else(String::new, ToString::to_string),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .chain(self.ssl.values().flat_map(ssl_effective))
        .collect()
    }

    /// The security protocol of listener `name` (PLAINTEXT or SSL).
    pub fn protocol_of(&self, name: &str) -> &str {
        self.listener_security_protocol_map
            .get(name)
            .map_or("PLAINTEXT", String::as_str)
    }
}

/// An SSL listener's effective settings, as `listener.name.<n>.ssl.*` (never key material).
fn ssl_effective(s: &crate::ssl::SslSettings) -> Vec<(String, String)> {
    use crate::ssl::{Keystore, Truststore};
    let p = format!("listener.name.{}.", s.listener.to_ascii_lowercase());
    let mut out = vec![(format!("{p}ssl.keystore.type"), "PEM".to_string())];
    match &s.keystore {
        Keystore::PemFile(l) => out.push((format!("{p}ssl.keystore.location"), l.value.clone())),
        Keystore::PemInline { .. } => out.push((
            format!("{p}ssl.keystore.certificate.chain"),
            "(inline PEM)".into(),
        )),
    }
    match &s.truststore {
        Truststore::None => {}
        Truststore::PemFile(l) => {
            out.push((format!("{p}ssl.truststore.location"), l.value.clone()))
        }
        Truststore::PemInline(_) => out.push((
            format!("{p}ssl.truststore.certificates"),
            "(inline PEM)".into(),
        )),
    }
    out.push((format!("{p}ssl.client.auth"), s.client_auth.to_string()));
    out.push((
        format!("{p}ssl.enabled.protocols"),
        s.enabled_protocols
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
    ));
    if let Some(c) = &s.cipher_suites {
        out.push((format!("{p}ssl.cipher.suites"), c.value.clone()));
    }
    out.push((
        format!("{p}ssl.endpoint.identification.algorithm"),
        if s.endpoint_identification {
            "https"
        } else {
            ""
        }
        .to_string(),
    ));
    out.push((
        format!("{p}ssl.principal.mapping.rules"),
        s.principal_mapping_rules.value.clone(),
    ));
    out
}

const DEFAULT_PROTOCOL_MAP: &str =
    "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";
const PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

/// `metrics.prometheus.listener=HOST:PORT` (`[v6]:PORT` for an IPv6 address). Unset or empty:
/// no endpoint.
fn parse_metrics_listener(r: &mut Reader<'_>, listeners: &[Listener]) -> Option<MetricsListener> {
    let entry = r.entry("metrics.prometheus.listener")?;
    let text = entry.value.trim();
    if text.is_empty() {
        return None;
    }
    let parsed = text.rsplit_once(':').and_then(|(host, port)| {
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = port.parse::<u16>().ok()?;
        (!host.is_empty() && is_valid_host(host) && (!host.contains(':') || text.starts_with('[')))
            .then(|| MetricsListener {
                host: host.to_string(),
                port,
            })
    });
    let Some(m) = parsed else {
        r.error(
            entry,
            format!("`{text}` is not HOST:PORT (e.g. 0.0.0.0:9404, or [::1]:9404 for IPv6; port 0 to 65535)"),
        );
        return None;
    };
    if m.port != 0 {
        if let Some(l) = listeners.iter().find(|l| l.port == m.port) {
            r.error(
                entry,
                format!(
                    "port {} is also the port of listener {l}; the metrics endpoint needs a port of its own",
                    m.port
                ),
            );
            return None;
        }
    }
    Some(m)
}

fn parse_protocol_map(r: &mut Reader<'_>) -> BTreeMap<String, String> {
    let entry = r.entry("listener.security.protocol.map");
    let text = entry.map_or(DEFAULT_PROTOCOL_MAP, |e| e.value.as_str());
    let mut map = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parsed = pair
            .split_once(':')
            .map(|(n, p)| (n.trim(), p.trim().to_ascii_uppercase()));
        match parsed {
            Some((name, proto)) if !name.is_empty() && PROTOCOLS.contains(&proto.as_str()) => {
                map.insert(name.to_string(), proto);
            }
            _ => {
                if let Some(e) = entry {
                    r.error(
                        e,
                        format!(
                            "`{pair}`: expected LISTENER_NAME:PROTOCOL with PROTOCOL one of {}",
                            PROTOCOLS.join(", ")
                        ),
                    );
                }
            }
        }
    }
    map
}

/// The inter-broker listener, as Kafka picks it; errors name the key.
fn parse_inter_broker(
    r: &mut Reader<'_>,
    listeners: &[Listener],
    protocol_map: &BTreeMap<String, String>,
) -> String {
    let names = || {
        listeners
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let by_name = r.entry("inter.broker.listener.name");
    let by_protocol = r.entry("security.inter.broker.protocol");
    if let (Some(_), Some(p)) = (by_name, by_protocol) {
        r.error(
            p,
            "only one of inter.broker.listener.name and security.inter.broker.protocol may be set (as in Kafka)",
        );
    }
    if let Some(e) = by_name {
        let name = e.value.trim().to_string();
        if !listeners.iter().any(|l| l.name == name) {
            r.error(
                e,
                format!("`{name}` is not one of the listeners' names ({})", names()),
            );
        }
        return name;
    }
    if let Some(e) = by_protocol {
        let protocol = e.value.trim().to_ascii_uppercase();
        match protocol.as_str() {
            "PLAINTEXT" | "SSL" => {}
            "SASL_PLAINTEXT" | "SASL_SSL" => r.error(
                e,
                format!("{protocol}: SASL is not supported yet; use SSL or PLAINTEXT"),
            ),
            _ => r.error(
                e,
                format!("`{}`: expected PLAINTEXT or SSL", e.value.trim()),
            ),
        }
        // As Kafka: the listener named after the protocol.
        if !listeners.iter().any(|l| l.name == protocol) {
            r.error(
                e,
                format!(
                    "no listener is named {protocol} ({}); name the inter-broker listener with inter.broker.listener.name instead",
                    names()
                ),
            );
        } else if protocol_map.get(&protocol) != Some(&protocol) {
            r.error(
                e,
                format!("listener {protocol} is not mapped to {protocol} in listener.security.protocol.map; use inter.broker.listener.name"),
            );
        }
        return protocol;
    }
    listeners
        .iter()
        .find(|l| l.name == "PLAINTEXT")
        .or_else(|| listeners.first())
        .map(|l| l.name.clone())
        .unwrap_or_else(|| "PLAINTEXT".into())
}

/// Parses one `NAME://host:port`. `advertised` forbids port 0 and the wildcard address.
fn parse_listener(text: &str, advertised: bool) -> Result<Listener, String> {
    let form = "expected NAME://host:port, e.g. PLAINTEXT://kafka1.example.com:9092";
    let (name, rest) = text
        .split_once("://")
        .ok_or_else(|| format!("`{text}`: {form}"))?;
    let name = name.trim().to_string();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "`{text}`: listener name `{name}` must be letters, digits and `_`; {form}"
        ));
    }
    let (host, port) = if let Some(after) = rest.strip_prefix('[') {
        let (h, p) = after
            .split_once("]:")
            .ok_or_else(|| format!("`{text}`: {form}"))?;
        if h.parse::<Ipv6Addr>().is_err() {
            return Err(format!("`{text}`: `[{h}]` is not an IPv6 address"));
        }
        (h, p)
    } else {
        rest.rsplit_once(':')
            .ok_or_else(|| format!("`{text}`: {form}"))?
    };
    let port: u16 = port
        .trim()
        .parse()
        .map_err(|_| format!("`{text}`: port `{port}` is not a number from 0 to 65535"))?;
    if advertised && port == 0 {
        return Err(format!("`{text}`: an advertised port must not be 0"));
    }
    let host = host.trim();
    let host = if host.is_empty() {
        None
    } else if !is_valid_host(host) {
        let hint = if advertised {
            " (it looks like a placeholder left in the file): put the host name or IP address clients use to reach this broker"
        } else {
            ""
        };
        return Err(format!(
            "`{host}` in `{text}` is not a valid host name or IP address, so it is not a resolvable host{hint}; {form}"
        ));
    } else {
        Some(host.to_string())
    };
    if advertised && matches!(host.as_deref(), Some("0.0.0.0") | Some("::")) {
        return Err(format!(
            "`{text}`: cannot advertise the wildcard address; clients need a reachable host"
        ));
    }
    Ok(Listener { name, host, port })
}

fn parse_listener_list(
    r: &mut Reader<'_>,
    entry: &Entry,
    advertised: bool,
    protocol_map: &BTreeMap<String, String>,
) -> Vec<Listener> {
    let mut out: Vec<Listener> = Vec::new();
    for item in entry
        .value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match parse_listener(item, advertised) {
            Ok(l) => {
                if out.iter().any(|o| o.name == l.name) {
                    r.error(entry, format!("listener name `{}` appears twice", l.name));
                } else if !advertised && out.iter().any(|o| o.port == l.port && l.port != 0) {
                    r.error(entry, format!("port {} is used by two listeners", l.port));
                } else {
                    match protocol_map.get(&l.name).map(String::as_str) {
                        None => r.error(entry, format!(
                            "listener `{}` has no entry in listener.security.protocol.map; add {}:PLAINTEXT or {}:SSL", l.name, l.name, l.name
                        )),
                        Some("PLAINTEXT" | "SSL") => {}
                        Some(p) => r.error(entry, format!(
                            "listener `{}` uses {p} (listener.security.protocol.map): SASL is not supported yet; use SSL (with client certificates, ssl.client.auth=required) or PLAINTEXT", l.name
                        )),
                    }
                    out.push(l);
                }
            }
            Err(msg) => r.error(entry, msg),
        }
    }
    if out.is_empty() && r.diags.errors.is_empty() {
        r.error(entry, "expected at least one NAME://host:port listener");
    }
    out
}

fn parse_listener_settings(
    r: &mut Reader<'_>,
    protocol_map: &BTreeMap<String, String>,
) -> Vec<Listener> {
    if let Some(entry) = r.entry("listeners") {
        if let Some(port) = r.props.get("port") {
            r.warn(port, "ignored because listeners is set");
        }
        return parse_listener_list(r, entry, false, protocol_map);
    }
    // Deprecated form: host.name + port → PLAINTEXT://host.name:port.
    let port = r.number("port", 9092u16, 0, u16::MAX);
    let host = r.string("host.name");
    if let Some(h) = &host {
        if !is_valid_host(h) {
            let e = r
                .props
                .get("host.name")
                .expect("host.name was read")
                .clone();
            r.error(&e, format!("`{h}` is not a valid host name or IP address"));
            return Vec::new();
        }
    }
    vec![Listener {
        name: "PLAINTEXT".into(),
        host,
        port,
    }]
}

fn parse_advertised(
    r: &mut Reader<'_>,
    listeners: &[Listener],
    protocol_map: &BTreeMap<String, String>,
) -> Vec<Listener> {
    if let Some(entry) = r.entry("advertised.listeners") {
        let adv = parse_listener_list(r, entry, true, protocol_map);
        for l in &adv {
            if !listeners.iter().any(|x| x.name == l.name) {
                r.error(
                    entry,
                    format!(
                        "advertised listener `{}` is not one of the listeners ({})",
                        l.name,
                        listeners
                            .iter()
                            .map(|x| x.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
        return adv;
    }
    let adv_host = r.string("advertised.host.name");
    let adv_port = r.opt_number::<u16>("advertised.port", 1, u16::MAX);
    if adv_host.is_some() || adv_port.is_some() {
        let fallback = listeners.first();
        let text = format!(
            "PLAINTEXT://{}:{}",
            adv_host
                .clone()
                .or_else(|| fallback.and_then(|l| l.host.clone()))
                .unwrap_or_default(),
            adv_port.or(fallback.map(|l| l.port)).unwrap_or(9092)
        );
        return match parse_listener(&text, true) {
            Ok(l) => vec![l],
            Err(msg) => {
                let e = r
                    .props
                    .get("advertised.host.name")
                    .or_else(|| r.props.get("advertised.port"))
                    .expect("one is set")
                    .clone();
                r.error(&e, msg);
                Vec::new()
            }
        };
    }
    // Unset: advertise the listeners, replacing wildcard hosts by "this host" (None).
    listeners
        .iter()
        .map(|l| Listener {
            host: l.host.clone().filter(|h| h != "0.0.0.0" && h != "::"),
            ..l.clone()
        })
        .collect()
}

/// Parses `host:port[,host:port...][/chroot]`.
pub fn parse_zk_connect(text: &str) -> Result<ZkConnect, String> {
    let form =
        "expected host:port[,host:port...][/chroot], e.g. localhost:2181,localhost:2182/kafka";
    let text = text.trim();
    let (hosts, chroot) = match text.find('/') {
        Some(i) => (&text[..i], Some(&text[i..])),
        None => (text, None),
    };
    let mut servers = Vec::new();
    for item in hosts.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (host, port) = match item.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') => {
                let port = p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                    format!("`{item}`: port `{p}` is not a number from 1 to 65535; {form}")
                })?;
                (h.trim_start_matches('[').trim_end_matches(']'), port)
            }
            _ => (item, 2181),
        };
        if !is_valid_host(host) {
            return Err(format!(
                "`{host}` is not a valid host name or IP address; {form}"
            ));
        }
        servers.push((host.to_string(), port));
    }
    if servers.is_empty() {
        return Err(format!("no coordinator address given; {form}"));
    }
    let chroot = match chroot {
        None | Some("/") => None,
        Some(c) => {
            if c.ends_with('/') || c.contains("//") || c.split('/').any(|s| s == "." || s == "..") {
                return Err(format!("chroot `{c}` is not a valid path (no trailing `/`, empty, `.` or `..` parts); {form}"));
            }
            Some(c.to_string())
        }
    };
    Ok(ZkConnect { servers, chroot })
}
