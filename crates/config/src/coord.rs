//! `zookeeper.properties` → [`CoordConfig`]: the coordinator's settings with ZooKeeper 3.8's keys,
//! defaults and checks, plus the `myid` file in `dataDir` that names this node.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use crate::diag::{ConfigError, Diagnostic, Diagnostics, Loaded};
use crate::properties::{Entry, Properties};
use crate::reader::Reader;
use crate::{is_valid_host, read_file};

/// ZooKeeper's default `tickTime` in milliseconds.
pub const DEFAULT_TICK_TIME_MS: u32 = 3000;

/// Four-letter words the coordinator knows. `ALL_FOUR_LETTER_WORDS[..]` is also what `*` enables.
pub const ALL_FOUR_LETTER_WORDS: &[&str] = &[
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "hash", "isro", "mntr", "ruok", "srst",
    "srvr", "stat", "wchc", "wchp", "wchs",
];

/// Enabled when `4lw.commands.whitelist` is unset: the read-only health and status words that
/// operators and tools poll, but none that list clients, sessions or paths.
pub const DEFAULT_FOUR_LETTER_WORDS: &[&str] =
    &["conf", "envi", "isro", "mntr", "ruok", "srvr", "stat"];

/// `metricsProvider.className` of ZooKeeper 3.6+'s Prometheus provider: coord then serves
/// `/metrics` itself.
pub const PROMETHEUS_METRICS_PROVIDER: &str =
    "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider";
/// ZooKeeper's default provider (figures through `mntr` only) and its no-op one; coord accepts
/// both and serves no `/metrics` with them.
pub const OTHER_METRICS_PROVIDERS: &[&str] = &[
    "org.apache.zookeeper.metrics.impl.DefaultMetricsProvider",
    "org.apache.zookeeper.metrics.impl.NullMetricsProvider",
];
/// `metricsProvider.httpPort`'s default, as in ZooKeeper.
pub const DEFAULT_METRICS_PORT: u16 = 7000;

/// Where the Prometheus endpoint listens (`metricsProvider.*` with the Prometheus provider).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsEndpoint {
    /// `metricsProvider.httpHost`, all interfaces (`0.0.0.0`) by default.
    pub http_host: String,
    /// `metricsProvider.httpPort`; 0 takes any free port (logged at start), as ZooKeeper does.
    pub http_port: u16,
    /// `metricsProvider.exportJvmInfo`: ZooKeeper adds the JVM's and the process's families;
    /// coord has no JVM and adds the process's (`process_*`, as `simpleclient` names them).
    pub export_process_info: bool,
}

/// What a `server.N` member does in the ensemble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRole {
    /// Votes and can lead.
    Participant,
    /// Receives the replicated log but does not vote (a Raft learner).
    Observer,
}

/// One `server.N=host:peerPort:electionPort[:role][;[clientAddress:]clientPort]` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    pub id: u64,
    pub host: String,
    /// First port: replication and forwarded client writes.
    pub peer_port: u16,
    /// Second port: votes.
    pub election_port: u16,
    pub role: PeerRole,
    /// The `;[address:]port` client address given on the server line, if any.
    pub client_address: Option<String>,
    pub client_port: Option<u16>,
    pub line: usize,
}

/// Which four-letter words are answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FourLetterWords {
    All,
    Only(BTreeSet<String>),
}

impl FourLetterWords {
    pub fn allows(&self, word: &str) -> bool {
        match self {
            FourLetterWords::All => true,
            FourLetterWords::Only(set) => set.contains(word),
        }
    }
}

impl fmt::Display for FourLetterWords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FourLetterWords::All => f.write_str("*"),
            FourLetterWords::Only(set) => {
                let words: Vec<&str> = set.iter().map(String::as_str).collect();
                f.write_str(&words.join(","))
            }
        }
    }
}

/// The coordinator's validated settings.
#[derive(Debug, Clone)]
pub struct CoordConfig {
    pub path: PathBuf,
    pub data_dir: PathBuf,
    /// Where the Raft log goes; `dataDir` when `dataLogDir` is unset.
    pub data_log_dir: PathBuf,
    pub client_port: Option<u16>,
    pub client_port_address: Option<String>,
    pub tick_time_ms: u32,
    pub init_limit: u32,
    pub sync_limit: u32,
    /// Connections allowed per client IP; 0 means unlimited.
    pub max_client_cnxns: u32,
    pub min_session_timeout_ms: u32,
    pub max_session_timeout_ms: u32,
    pub servers: BTreeMap<u64, ServerSpec>,
    pub four_letter_words: FourLetterWords,
    pub autopurge_snap_retain_count: u32,
    pub autopurge_purge_interval_hours: u32,
    pub admin_enable_server: bool,
    /// TTL and container-style extended node types (`extendedTypesEnabled`).
    pub extended_types_enabled: bool,
    pub standalone_enabled: bool,
    /// `snapCount`: log entries between two snapshots; `None` keeps coord's default.
    pub snap_count: Option<u64>,
    /// `preAllocSize` (KiB; ZooKeeper's transaction-log preallocation, 64 MiB by default): the
    /// space a leader keeps free in `dataDir` and `dataLogDir`, refusing new writes below it.
    pub min_free_bytes: u64,
    /// `jute.maxbuffer` (a Java system property for ZooKeeper, a key here): the largest client
    /// frame accepted; a longer one closes that connection (the session survives).
    pub jute_maxbuffer: usize,
    /// `reconfigEnabled`: whether clients may change the ensemble with `reconfig` (off by
    /// default, as in ZooKeeper 3.8).
    pub reconfig_enabled: bool,
    /// `skipACL=yes`: every ACL check passes, `reconfig`'s included (ZooKeeper's
    /// `zookeeper.skipACL` system property).
    pub skip_acl: bool,
    /// `DigestAuthenticationProvider.superDigest`: `super:<base64 sha1>`; a client that
    /// authenticates with the matching `digest` credentials is the super user.
    pub super_digest: Option<String>,
    /// `metricsProvider.className=…PrometheusMetricsProvider`: serve `/metrics` there. `None`
    /// with ZooKeeper's default provider (figures through `mntr` only).
    pub metrics: Option<MetricsEndpoint>,
}

/// Why `dataDir/myid` could not name this node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MyIdError {
    #[error("{}: dataDir does not exist; create it and write this node's id into {}", dir.display(), dir.join("myid").display())]
    DataDirMissing { dir: PathBuf },
    #[error("{}: missing; write this node's id (the N of its server.N line) into it, e.g. `echo 1 > {}`", path.display(), path.display())]
    Missing { path: PathBuf },
    #[error("{}: cannot read: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("{}: expected a whole number (the N of this node's server.N line), found `{found}`", path.display())]
    NotANumber { path: PathBuf, found: String },
    #[error("{}: id {id} has no server.{id} line in {config}; the ensemble has {known}", path.display())]
    NotInEnsemble {
        path: PathBuf,
        id: u64,
        config: String,
        known: String,
    },
}

impl MyIdError {
    /// A `dataDir` or `myid` that simply does not exist yet (a first start, or `--check` before
    /// set-up) rather than one that is wrong.
    pub fn is_not_yet_created(&self) -> bool {
        matches!(
            self,
            MyIdError::DataDirMissing { .. } | MyIdError::Missing { .. }
        )
    }
}

impl CoordConfig {
    /// Reads and validates a `zookeeper.properties` file.
    pub fn load(path: impl AsRef<Path>) -> Result<Loaded<CoordConfig>, ConfigError> {
        let path = path.as_ref();
        let bytes = read_file(path)?;
        Self::from_bytes(path, &bytes)
    }

    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Loaded<CoordConfig>, ConfigError> {
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
    ) -> (Option<CoordConfig>, Diagnostics) {
        let mut r = Reader::new(props, diags);
        if props.is_empty() && r.diags.errors.is_empty() {
            r.missing(
                "dataDir",
                "the file has no settings (it is empty or all comments); expected at least dataDir and clientPort",
            );
            return (None, r.diags);
        }

        let data_dir = r.string("dataDir").map(PathBuf::from);
        if data_dir.is_none() {
            r.missing(
                "dataDir",
                "not set; expected the directory that holds snapshots and the myid file",
            );
        }
        let data_log_dir = r.string("dataLogDir").map(PathBuf::from);
        let client_port = r.opt_number::<u16>("clientPort", 1, u16::MAX);
        let client_port_address = r.string("clientPortAddress");
        if let (Some(addr), Some(entry)) = (&client_port_address, props.get("clientPortAddress")) {
            if !is_valid_host(addr) {
                r.error(
                    entry,
                    format!("`{addr}` is not a valid host name or IP address"),
                );
            }
        }
        let tick_time_ms = r.number("tickTime", DEFAULT_TICK_TIME_MS, 1, 60_000 * 60);
        let init_limit = r.opt_number::<u32>("initLimit", 1, 100_000);
        let sync_limit = r.opt_number::<u32>("syncLimit", 1, 100_000);
        let max_client_cnxns = r.number("maxClientCnxns", 60u32, 0, u32::MAX);
        // ZooKeeper's default 0xfffff; at least what a session's own requests need, at most
        // 64 MiB (every connection may hold one frame of this size while it is read).
        let jute_maxbuffer = r.number("jute.maxbuffer", 0xfffffusize, 1024, 64 << 20);
        // ZooKeeper's default: 64 MiB, given in KiB; 0 turns the check off.
        let min_free_bytes = r.number("preAllocSize", 65_536u64, 0, 1 << 30) * 1024;
        let min_session_timeout_ms = r.number(
            "minSessionTimeout",
            tick_time_ms.saturating_mul(2),
            1,
            u32::MAX,
        );
        let max_session_timeout_ms = r.number(
            "maxSessionTimeout",
            tick_time_ms.saturating_mul(20),
            1,
            u32::MAX,
        );
        if min_session_timeout_ms > max_session_timeout_ms {
            let entry = props
                .get("minSessionTimeout")
                .or_else(|| props.get("maxSessionTimeout"))
                .cloned();
            let msg = format!(
                "minSessionTimeout ({min_session_timeout_ms} ms) must not exceed maxSessionTimeout ({max_session_timeout_ms} ms)"
            );
            match entry {
                Some(e) => r.error(&e, msg),
                None => r.missing("minSessionTimeout", msg),
            }
        }

        let servers = parse_servers(&mut r);
        let standalone_enabled = r.boolean("standaloneEnabled", true);
        let voting = servers
            .values()
            .filter(|s| s.role == PeerRole::Participant)
            .count();
        let ensemble = servers.len() > 1 || (servers.len() == 1 && !standalone_enabled);
        if ensemble {
            if init_limit.is_none() && props.get("initLimit").is_none() {
                r.missing("initLimit", "not set; an ensemble needs it (ticks a follower may take to connect and catch up), e.g. initLimit=5");
            }
            if sync_limit.is_none() && props.get("syncLimit").is_none() {
                r.missing("syncLimit", "not set; an ensemble needs it (ticks a follower may lag before it is dropped), e.g. syncLimit=2");
            }
            if voting == 0 {
                r.missing(
                    "server.N",
                    "every server is an observer; at least one must be a participant",
                );
            } else if voting % 2 == 0 {
                let first = servers.values().next().map(|s| s.line).unwrap_or(1);
                r.diags.warn(Diagnostic::at(
                    &props.path,
                    first,
                    Some("server.N"),
                    format!(
                        "{voting} voting members: an even-sized ensemble tolerates no more failures than {} members would; use an odd number",
                        voting - 1
                    ),
                ));
            }
        }
        if client_port.is_none()
            && props.get("clientPort").is_none()
            && !servers.values().any(|s| s.client_port.is_some())
        {
            r.missing(
                "clientPort",
                "not set; expected the TCP port clients connect to, e.g. clientPort=2181",
            );
        }

        let four_letter_words = parse_four_letter_words(&mut r);
        let autopurge_snap_retain_count = r.number("autopurge.snapRetainCount", 3u32, 0, 1_000_000);
        let autopurge_snap_retain_count = if autopurge_snap_retain_count < 3 {
            if let Some(e) = props.get("autopurge.snapRetainCount") {
                r.warn(e, "below the minimum of 3; using 3");
            }
            3
        } else {
            autopurge_snap_retain_count
        };
        let autopurge_purge_interval_hours =
            r.number("autopurge.purgeInterval", 0u32, 0, 1_000_000);
        let admin_enable_server = r.boolean("admin.enableServer", true);
        if admin_enable_server {
            if let Some(e) = props.get("admin.enableServer") {
                r.warn(
                    e,
                    "coord has no HTTP admin server; use the four-letter words on the client port",
                );
            }
        }
        let extended_types_enabled = r.boolean("extendedTypesEnabled", false);
        let snap_count = r.opt_number::<u64>("snapCount", 2, u64::MAX / 2);
        let reconfig_enabled = r.boolean("reconfigEnabled", false);
        // ZooKeeper compares the property with "yes" and treats anything else as no.
        let skip_acl = r
            .string("skipACL")
            .is_some_and(|v| v.eq_ignore_ascii_case("yes"));
        let super_digest = r.string("DigestAuthenticationProvider.superDigest");
        if let (Some(d), Some(entry)) = (
            &super_digest,
            props.get("DigestAuthenticationProvider.superDigest"),
        ) {
            if !d.contains(':') {
                r.error(
                    entry,
                    format!("expected `user:base64(sha1(user:password))`, found `{d}`"),
                );
            }
        }
        let metrics = parse_metrics_provider(&mut r, client_port);
        r.accept(&["admin.serverPort", "admin.serverAddress"]);
        r.recognised_without_effect(
            &[
                "globalOutstandingLimit",
                "leaderServes",
                "electionAlg",
                "peerType",
                "syncEnabled",
                "quorumListenOnAllIPs",
                "localSessionsEnabled",
                "localSessionsUpgradingEnabled",
                "forceSync",
                "cnxTimeout",
                "snapshot.trust.empty",
                "dynamicConfigFile",
                "secureClientPort",
                "secureClientPortAddress",
            ],
            "coord manages this itself",
        );

        let diags = r.finish("coord");
        let (Some(data_dir), true) = (data_dir, diags.errors.is_empty()) else {
            return (None, diags);
        };
        let config = CoordConfig {
            path: props.path.clone(),
            data_log_dir: data_log_dir.unwrap_or_else(|| data_dir.clone()),
            data_dir,
            client_port,
            client_port_address,
            tick_time_ms,
            init_limit: init_limit.unwrap_or(10),
            sync_limit: sync_limit.unwrap_or(5),
            max_client_cnxns,
            min_session_timeout_ms,
            max_session_timeout_ms,
            servers,
            four_letter_words,
            autopurge_snap_retain_count,
            autopurge_purge_interval_hours,
            admin_enable_server,
            extended_types_enabled,
            standalone_enabled,
            snap_count,
            jute_maxbuffer,
            min_free_bytes,
            reconfig_enabled,
            skip_acl,
            super_digest,
            metrics,
        };
        (Some(config), diags)
    }

    /// True when the node runs alone: no `server.N` lines, or one with `standaloneEnabled=true`.
    pub fn is_standalone(&self) -> bool {
        self.servers.is_empty() || (self.servers.len() == 1 && self.standalone_enabled)
    }

    /// Reads `dataDir/myid`. In standalone mode a missing file is fine and the id is `None`.
    pub fn read_myid(&self) -> Result<Option<u64>, MyIdError> {
        let path = self.data_dir.join("myid");
        if !self.data_dir.is_dir() {
            if self.is_standalone() {
                return Ok(None);
            }
            return Err(MyIdError::DataDirMissing {
                dir: self.data_dir.clone(),
            });
        }
        let text = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if self.is_standalone() {
                    return Ok(None);
                }
                return Err(MyIdError::Missing { path });
            }
            Err(e) => {
                return Err(MyIdError::Unreadable {
                    path,
                    reason: e.to_string(),
                })
            }
        };
        let text = String::from_utf8_lossy(&text);
        let trimmed = text.trim();
        let id: u64 = trimmed.parse().map_err(|_| MyIdError::NotANumber {
            path: path.clone(),
            found: trimmed.chars().take(40).collect(),
        })?;
        if !self.servers.is_empty() && !self.servers.contains_key(&id) {
            let known: Vec<String> = self.servers.keys().map(|k| format!("server.{k}")).collect();
            return Err(MyIdError::NotInEnsemble {
                path,
                id,
                config: self.path.display().to_string(),
                known: known.join(", "),
            });
        }
        Ok(Some(id))
    }

    /// The client port of node `id`: `clientPort`, or the port on its `server.N` line.
    pub fn client_port_of(&self, id: Option<u64>) -> Option<u16> {
        id.and_then(|id| self.servers.get(&id))
            .and_then(|s| s.client_port)
            .or(self.client_port)
    }

    /// The effective settings, defaults included, as `key=value` pairs.
    pub fn effective(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("dataDir".into(), self.data_dir.display().to_string()),
            ("dataLogDir".into(), self.data_log_dir.display().to_string()),
            (
                "clientPort".into(),
                self.client_port.map(|p| p.to_string()).unwrap_or_default(),
            ),
            (
                "clientPortAddress".into(),
                self.client_port_address
                    .clone()
                    .unwrap_or_else(|| "0.0.0.0".into()),
            ),
            ("tickTime".into(), self.tick_time_ms.to_string()),
            ("initLimit".into(), self.init_limit.to_string()),
            ("syncLimit".into(), self.sync_limit.to_string()),
            ("maxClientCnxns".into(), self.max_client_cnxns.to_string()),
            (
                "minSessionTimeout".into(),
                self.min_session_timeout_ms.to_string(),
            ),
            (
                "maxSessionTimeout".into(),
                self.max_session_timeout_ms.to_string(),
            ),
            (
                "4lw.commands.whitelist".into(),
                self.four_letter_words.to_string(),
            ),
            (
                "autopurge.snapRetainCount".into(),
                self.autopurge_snap_retain_count.to_string(),
            ),
            (
                "autopurge.purgeInterval".into(),
                self.autopurge_purge_interval_hours.to_string(),
            ),
            (
                "admin.enableServer".into(),
                self.admin_enable_server.to_string(),
            ),
            (
                "extendedTypesEnabled".into(),
                self.extended_types_enabled.to_string(),
            ),
            (
                "standaloneEnabled".into(),
                self.standalone_enabled.to_string(),
            ),
            ("jute.maxbuffer".into(), self.jute_maxbuffer.to_string()),
            ("reconfigEnabled".into(), self.reconfig_enabled.to_string()),
            (
                "skipACL".into(),
                if self.skip_acl { "yes" } else { "no" }.to_string(),
            ),
            (
                "preAllocSize".into(),
                (self.min_free_bytes / 1024).to_string(),
            ),
        ];
        if let Some(m) = &self.metrics {
            v.push((
                "metricsProvider.className".into(),
                PROMETHEUS_METRICS_PROVIDER.into(),
            ));
            v.push(("metricsProvider.httpHost".into(), m.http_host.clone()));
            v.push(("metricsProvider.httpPort".into(), m.http_port.to_string()));
            v.push((
                "metricsProvider.exportJvmInfo".into(),
                m.export_process_info.to_string(),
            ));
        }
        for s in self.servers.values() {
            let mut value = format!(
                "{}:{}:{}",
                host_for_display(&s.host),
                s.peer_port,
                s.election_port
            );
            if s.role == PeerRole::Observer {
                value.push_str(":observer");
            }
            if let Some(port) = s.client_port {
                value.push(';');
                if let Some(addr) = &s.client_address {
                    value.push_str(&host_for_display(addr));
                    value.push(':');
                }
                value.push_str(&port.to_string());
            }
            v.push((format!("server.{}", s.id), value));
        }
        v
    }
}

fn host_for_display(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// `metricsProvider.*`. ZooKeeper refuses to start with a provider class it cannot load, and
/// so does coord with one it does not have; the Prometheus provider's own keys without it have
/// no effect there or here (a warning says so).
fn parse_metrics_provider(r: &mut Reader<'_>, client_port: Option<u16>) -> Option<MetricsEndpoint> {
    let class = r.entry("metricsProvider.className");
    let prometheus = match class {
        None => false,
        Some(e) if e.value.trim() == PROMETHEUS_METRICS_PROVIDER => true,
        Some(e) if OTHER_METRICS_PROVIDERS.contains(&e.value.trim()) => false,
        Some(e) => {
            r.error(
                e,
                format!(
                    "`{}` is not a metrics provider coord has (ZooKeeper stops with \"metrics provider class was not found\"); use {PROMETHEUS_METRICS_PROVIDER} to serve /metrics, or leave it unset",
                    e.value.trim()
                ),
            );
            false
        }
    };
    let http_host = r.string("metricsProvider.httpHost");
    if let (Some(host), Some(entry)) = (&http_host, r.props.get("metricsProvider.httpHost")) {
        if !is_valid_host(host) {
            r.error(
                entry,
                format!("`{host}` is not a valid host name or IP address"),
            );
        }
    }
    let http_port = r.number(
        "metricsProvider.httpPort",
        DEFAULT_METRICS_PORT,
        0,
        u16::MAX,
    );
    if let (Some(entry), Some(client)) = (r.props.get("metricsProvider.httpPort"), client_port) {
        if prometheus && http_port == client {
            r.error(
                entry,
                format!("{http_port} is also the clientPort; the metrics endpoint needs a port of its own"),
            );
        }
    }
    let export_process_info = r.boolean("metricsProvider.exportJvmInfo", true);
    if !prometheus {
        for key in [
            "metricsProvider.httpHost",
            "metricsProvider.httpPort",
            "metricsProvider.exportJvmInfo",
        ] {
            if let Some(e) = r.props.get(key) {
                r.warn(
                    e,
                    format!("has no effect without metricsProvider.className={PROMETHEUS_METRICS_PROVIDER}"),
                );
            }
        }
        return None;
    }
    Some(MetricsEndpoint {
        http_host: http_host.unwrap_or_else(|| "0.0.0.0".into()),
        http_port,
        export_process_info,
    })
}

fn parse_four_letter_words(r: &mut Reader<'_>) -> FourLetterWords {
    let Some(entry) = r.entry("4lw.commands.whitelist") else {
        return FourLetterWords::Only(
            DEFAULT_FOUR_LETTER_WORDS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        );
    };
    let mut set = BTreeSet::new();
    for word in entry
        .value
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
    {
        if word == "*" {
            return FourLetterWords::All;
        }
        if ALL_FOUR_LETTER_WORDS.contains(&word) {
            set.insert(word.to_string());
        } else {
            r.warn(
                entry,
                format!(
                    "`{word}` is not a four-letter word coord knows ({}); ignored",
                    ALL_FOUR_LETTER_WORDS.join(", ")
                ),
            );
        }
    }
    FourLetterWords::Only(set)
}

fn parse_servers(r: &mut Reader<'_>) -> BTreeMap<u64, ServerSpec> {
    let mut servers = BTreeMap::new();
    // (host, port) → (server id, which port) for the duplicate check.
    let mut ports: HashMap<(String, u16), (u64, &'static str)> = HashMap::new();
    let entries: Vec<&Entry> = r
        .props
        .entries()
        .iter()
        .filter(|e| e.key.starts_with("server."))
        .collect();
    for entry in entries {
        r.mark_used(&entry.key);
        let id_text = &entry.key["server.".len()..];
        let Ok(id) = id_text.parse::<u64>() else {
            r.error(
                entry,
                format!(
                    "expected server.N with N a whole number (the node's myid), found `{}`",
                    entry.key
                ),
            );
            continue;
        };
        let spec = match parse_server_value(id, entry) {
            Ok(s) => s,
            Err(msg) => {
                r.error(entry, msg);
                continue;
            }
        };
        let mut clash = false;
        for (port, which) in [
            (spec.peer_port, "peer port"),
            (spec.election_port, "election port"),
        ] {
            let key = (spec.host.to_ascii_lowercase(), port);
            if let Some(&(other, other_which)) = ports.get(&key) {
                let whose = if other == id {
                    "its own".to_string()
                } else {
                    format!("server.{other}'s")
                };
                r.error(
                    entry,
                    format!(
                        "{which} {port} on {} is already {whose} {other_which}; every peer and election port on a host must be different",
                        spec.host
                    ),
                );
                clash = true;
            } else {
                ports.insert(key, (id, which));
            }
        }
        if !clash {
            servers.insert(id, spec);
        }
    }
    servers
}

/// Splits `host:port...` where host may be a bracketed IPv6 address.
fn split_host(s: &str) -> Result<(String, &str), String> {
    if let Some(rest) = s.strip_prefix('[') {
        let close = rest.find(']').ok_or("unclosed `[` in an IPv6 address")?;
        let host = &rest[..close];
        host.parse::<Ipv6Addr>()
            .map_err(|_| format!("`[{host}]` is not an IPv6 address"))?;
        let after = &rest[close + 1..];
        let after = after
            .strip_prefix(':')
            .ok_or("expected `:port` after the IPv6 address")?;
        Ok((host.to_string(), after))
    } else {
        let colon = s.find(':').ok_or("expected host:port")?;
        Ok((s[..colon].to_string(), &s[colon + 1..]))
    }
}

fn parse_port(text: &str, what: &str) -> Result<u16, String> {
    match text.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!(
            "{what} `{text}` is not a port number from 1 to 65535"
        )),
    }
}

fn parse_server_value(id: u64, entry: &Entry) -> Result<ServerSpec, String> {
    let form = "expected host:peerPort:electionPort[:participant|:observer][;[clientAddress:]clientPort], e.g. localhost:2888:3888";
    let value = entry.value.trim();
    if value.contains('|') {
        return Err(format!(
            "several addresses per server (`|`) are not supported; {form}"
        ));
    }
    let (main, client) = match value.split_once(';') {
        Some((m, c)) => (m, Some(c)),
        None => (value, None),
    };
    let (host, rest) = split_host(main).map_err(|e| format!("{e}; {form}"))?;
    if host.is_empty() || !is_valid_host(&host) {
        return Err(format!(
            "`{host}` is not a valid host name or IP address; {form}"
        ));
    }
    let parts: Vec<&str> = rest.split(':').collect();
    if parts.len() < 2 || parts.len() > 3 {
        return Err(format!("`{value}` does not have that form; {form}"));
    }
    let peer_port = parse_port(parts[0], "peer port")?;
    let election_port = parse_port(parts[1], "election port")?;
    if peer_port == election_port {
        return Err(format!(
            "peer port and election port are both {peer_port}; they must differ"
        ));
    }
    let role = match parts.get(2).map(|r| r.trim().to_ascii_lowercase()) {
        None => PeerRole::Participant,
        Some(r) if r == "participant" => PeerRole::Participant,
        Some(r) if r == "observer" => PeerRole::Observer,
        Some(r) => return Err(format!("role `{r}` is neither participant nor observer")),
    };
    let (client_address, client_port) = match client {
        None => (None, None),
        Some(c) => {
            let c = c.trim();
            if c.contains(':') {
                let (addr, port) = split_host(c).map_err(|e| format!("client address: {e}"))?;
                if !is_valid_host(&addr) {
                    return Err(format!(
                        "client address `{addr}` is not a valid host name or IP address"
                    ));
                }
                (Some(addr), Some(parse_port(port, "client port")?))
            } else {
                (None, Some(parse_port(c, "client port")?))
            }
        }
    };
    Ok(ServerSpec {
        id,
        host,
        peer_port,
        election_port,
        role,
        client_address,
        client_port,
        line: entry.line,
    })
}
