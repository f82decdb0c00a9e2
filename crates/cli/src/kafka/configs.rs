//! `kafka-configs` for client quotas: `--alter` (`--add-config`, `--delete-config`) and
//! `--describe` of `clients` and `users` entities (`--entity-name` or `--entity-default`, a user
//! and a client together for a user's client), with Apache Kafka 4.x's options and output.
//! Topic and broker configurations are not handled here (Kafka's tool does both against this
//! broker).
//!
//! Requests go to the first bootstrap broker that answers (every broker serves
//! DescribeClientQuotas and AlterClientQuotas from coord) through the project's Kafka client
//! module.

use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use kafka_protocol::messages::{
    alter_client_quotas_request, describe_client_quotas_request, AlterClientQuotasRequest,
    AlterClientQuotasResponse, ApiKey, DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_kafka::Conn;

const CLIENT_ID: &str = "sluice-admin";

/// Quota keys of user and client-id entities.
const QUOTA_KEYS: [&str; 4] = [
    "consumer_byte_rate",
    "controller_mutation_rate",
    "producer_byte_rate",
    "request_percentage",
];

/// Command line of `kafka-configs` (the quota subset).
#[derive(Debug, Parser)]
#[command(
    name = "kafka-configs",
    about = "Change or describe client and user quotas.",
    disable_version_flag = true
)]
pub struct ConfigsArgs {
    /// The broker to connect to.
    #[arg(long = "bootstrap-server", value_name = "HOST:PORT")]
    pub bootstrap_server: String,
    /// Accepted for compatibility; client properties do not apply to these requests.
    #[arg(long = "command-config", value_name = "FILE")]
    pub command_config: Option<PathBuf>,
    /// Alter the configuration of the entity.
    #[arg(long)]
    pub alter: bool,
    /// List configs for the given entity.
    #[arg(long)]
    pub describe: bool,
    /// `k1=v1,k2=v2` quotas to add or change.
    #[arg(long = "add-config", value_name = "K=V,...")]
    pub add_config: Option<String>,
    /// `k1,k2` quotas to remove.
    #[arg(long = "delete-config", value_name = "K,...")]
    pub delete_config: Option<String>,
    /// `clients` or `users` (both, in either order, for a user's client).
    #[arg(long = "entity-type", value_name = "TYPE", action = clap::ArgAction::Append)]
    pub entity_type: Vec<String>,
    /// Name of the entity, for the entity type given at the same position.
    #[arg(long = "entity-name", value_name = "NAME", action = clap::ArgAction::Append)]
    pub entity_name: Vec<String>,
    /// The default entity, for the entity type given at the same position.
    // A flag taking no value; appended (an empty value per use) so that each use has its own
    // position among the --entity-name values.
    #[arg(long = "entity-default", action = clap::ArgAction::Append, num_args = 0, default_missing_value = "")]
    pub entity_default: Vec<String>,
}

/// Parses the process arguments and runs the tool.
pub fn main() -> ExitCode {
    let matches = ConfigsArgs::command().get_matches();
    let args = match ConfigsArgs::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    run(&args, &entity_names(&matches))
}

/// `--entity-name` values and `--entity-default`s in command-line order (`None`: the default),
/// as Kafka pairs them with the entity types.
pub fn entity_names(m: &ArgMatches) -> Vec<Option<String>> {
    let mut v: Vec<(usize, Option<String>)> = Vec::new();
    if let (Some(idx), Some(vals)) = (
        m.indices_of("entity_name"),
        m.get_many::<String>("entity_name"),
    ) {
        v.extend(idx.zip(vals.map(|s| Some(s.clone()))));
    }
    if let Some(idx) = m.indices_of("entity_default") {
        v.extend(idx.map(|i| (i, None)));
    }
    v.sort_by_key(|x| x.0);
    v.into_iter().map(|x| x.1).collect()
}

pub fn run(args: &ConfigsArgs, names: &[Option<String>]) -> ExitCode {
    match execute(args, names) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// (entity type on the wire, name) per entity component, user first.
type Entity = Vec<(&'static str, Option<String>)>;

fn entity(args: &ConfigsArgs, names: &[Option<String>], describe: bool) -> Result<Entity> {
    if args.entity_type.is_empty() {
        bail!("At least one --entity-type must be specified");
    }
    if names.len() > args.entity_type.len() {
        bail!("--entity-name or --entity-default must be given after the --entity-type it names");
    }
    if !describe && names.len() != args.entity_type.len() {
        bail!("An entity name must be specified with --alter of users, clients");
    }
    let mut e: Entity = Vec::new();
    for (i, t) in args.entity_type.iter().enumerate() {
        let wire = match t.as_str() {
            "users" => "user",
            "clients" => "client-id",
            "topics" | "brokers" | "broker-loggers" | "ips" => bail!(
                "this kafka-configs handles client and user quotas only; use Apache Kafka's kafka-configs.sh for {t}"
            ),
            other => bail!("Invalid entity type {other}, the entity type must be one of users, clients"),
        };
        // A name absent on describe: every entity of the type (Some(None) stands for "any").
        let name = match names.get(i) {
            Some(n) => n.clone(),
            None => {
                e.push((wire, Some(ANY.to_string())));
                continue;
            }
        };
        e.push((wire, name));
    }
    if e.len() == 2 && e[0].0 == e[1].0 {
        bail!("Only one of each entity type may be given");
    }
    e.sort_by_key(|(t, _)| if *t == "user" { 0 } else { 1 });
    Ok(e)
}

/// An entity's quotas, sorted by key.
type Described = Vec<(Entity, Vec<(String, f64)>)>;

/// Stands for "any name" in a describe [`Entity`].
const ANY: &str = "\u{0}any";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn connect(bootstrap: &str) -> Result<Conn> {
    let mut last = None;
    for server in bootstrap
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let addr = match server.to_socket_addrs().ok().and_then(|mut a| a.next()) {
            Some(a) => a,
            None => {
                last = Some(anyhow::anyhow!("cannot resolve {server}"));
                continue;
            }
        };
        match Conn::connect(addr, CLIENT_ID) {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e.into()),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("--bootstrap-server names no broker")))
}

/// The quotas of entities matching `e` (strictly: entities of exactly these types).
fn describe(c: &mut Conn, e: &Entity) -> Result<Described> {
    let mut req = DescribeClientQuotasRequest::default();
    req.strict = true;
    req.components = e
        .iter()
        .map(|(t, n)| {
            let mut comp = describe_client_quotas_request::ComponentData::default();
            comp.entity_type = s(t);
            (comp.match_type, comp._match) = match n.as_deref() {
                Some(ANY) => (2, None),
                Some(n) => (0, Some(s(n))),
                None => (1, None),
            };
            comp
        })
        .collect();
    let resp: DescribeClientQuotasResponse = c.call(ApiKey::DescribeClientQuotas, 1, &req)?;
    if resp.error_code != 0 {
        bail!(
            "{}: {}",
            exception(resp.error_code),
            resp.error_message
                .map(|m| m.to_string())
                .unwrap_or_default()
        );
    }
    let mut out = Vec::new();
    for entry in resp.entries.unwrap_or_default() {
        let mut ent: Entity = entry
            .entity
            .iter()
            .map(|d| {
                let t = if d.entity_type.as_str() == "user" {
                    "user"
                } else {
                    "client-id"
                };
                (t, d.entity_name.as_ref().map(|n| n.to_string()))
            })
            .collect();
        ent.sort_by_key(|(t, _)| if *t == "user" { 0 } else { 1 });
        let mut values: Vec<(String, f64)> = entry
            .values
            .iter()
            .map(|v| (v.key.to_string(), v.value))
            .collect();
        values.sort_by(|a, b| a.0.cmp(&b.0));
        out.push((ent, values));
    }
    Ok(out)
}

/// Kafka's exception name for an error code, as its tool prints it.
fn exception(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(ResponseError::InvalidRequest) => {
            "org.apache.kafka.common.errors.InvalidRequestException".into()
        }
        Some(ResponseError::UnsupportedVersion) => {
            "org.apache.kafka.common.errors.UnsupportedVersionException".into()
        }
        Some(e) => format!("{e:?}"),
        None => format!("error {code}"),
    }
}

/// How Kafka's tool names an entity: `client-id 'x'`, `the default user-principal`, ...
fn describe_entity(e: &Entity) -> String {
    e.iter()
        .map(|(t, n)| {
            let what = if *t == "user" {
                "user-principal"
            } else {
                "client-id"
            };
            match n {
                Some(n) => format!("{what} '{n}'"),
                None => format!("the default {what}"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A double as Java prints it (`Double.toString`): `1024.0`, `12.5`, `1.048576E8`.
pub fn java_double(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 || (1e-3..1e7).contains(&a) {
        let t = format!("{v:?}");
        if t.contains('.') || t.contains('e') {
            t
        } else {
            format!("{t}.0")
        }
    } else {
        let t = format!("{v:e}");
        let (mantissa, exp) = t.split_once('e').expect("exponent");
        let mantissa = if mantissa.contains('.') {
            mantissa.to_string()
        } else {
            format!("{mantissa}.0")
        };
        format!("{mantissa}E{exp}")
    }
}

fn parse_additions(add: &str) -> Result<Vec<(String, f64)>> {
    let mut out = Vec::new();
    let mut unknown = Vec::new();
    for pair in add.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            bail!(
                "Invalid entity config: all configs to be added must be in the format \"key=val\"."
            );
        };
        let (k, v) = (k.trim(), v.trim());
        if !QUOTA_KEYS.contains(&k) {
            unknown.push(k.to_string());
            continue;
        }
        let value: f64 = v
            .parse()
            .map_err(|_| anyhow::anyhow!("Cannot parse quota configuration value for {k}: {v}"))?;
        out.push((k.to_string(), value));
    }
    if !unknown.is_empty() {
        bail!(
            "Only quota configs can be added for 'clients' or 'users' using --bootstrap-server. Unexpected config names: {}",
            unknown.join(",")
        );
    }
    Ok(out)
}

/// Runs the command; returns what it prints.
pub fn execute(args: &ConfigsArgs, names: &[Option<String>]) -> Result<String> {
    match (args.alter, args.describe) {
        (true, false) | (false, true) => {}
        _ => bail!("Command must include exactly one action: --describe, --alter"),
    }
    let e = entity(args, names, args.describe)?;
    let mut c = connect(&args.bootstrap_server).context("connecting to the broker")?;
    if args.describe {
        let mut out = String::new();
        for (ent, values) in describe(&mut c, &e)? {
            let list = values
                .iter()
                .map(|(k, v)| format!("{k}={}", java_double(*v)))
                .collect::<Vec<_>>()
                .join(", ");
            out.push_str(&format!(
                "Quota configs for {} are {list}\n",
                describe_entity(&ent)
            ));
        }
        return Ok(out);
    }
    let additions = match &args.add_config {
        Some(a) => parse_additions(a)?,
        None => Vec::new(),
    };
    let deletions: Vec<String> = args
        .delete_config
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect();
    if additions.is_empty() && deletions.is_empty() {
        bail!("At least one of --add-config or --delete-config must be specified with --alter");
    }
    if !deletions.is_empty() {
        // Kafka's tool refuses to delete what the entity does not have.
        let current = describe(&mut c, &e)?;
        let have: Vec<&str> = current
            .iter()
            .flat_map(|(_, v)| v.iter().map(|(k, _)| k.as_str()))
            .collect();
        let missing: Vec<&str> = deletions
            .iter()
            .map(String::as_str)
            .filter(|k| !have.contains(k))
            .collect();
        if !missing.is_empty() {
            bail!("Invalid config(s): {}", missing.join(","));
        }
    }
    let mut entry = alter_client_quotas_request::EntryData::default();
    entry.entity = e
        .iter()
        .map(|(t, n)| {
            let mut d = alter_client_quotas_request::EntityData::default();
            d.entity_type = s(t);
            d.entity_name = n.as_deref().map(s);
            d
        })
        .collect();
    for (k, v) in &additions {
        let mut op = alter_client_quotas_request::OpData::default();
        op.key = s(k);
        op.value = *v;
        entry.ops.push(op);
    }
    for k in &deletions {
        let mut op = alter_client_quotas_request::OpData::default();
        op.key = s(k);
        op.remove = true;
        entry.ops.push(op);
    }
    let mut req = AlterClientQuotasRequest::default();
    req.entries = vec![entry];
    let resp: AlterClientQuotasResponse = c.call(ApiKey::AlterClientQuotas, 1, &req)?;
    for r in &resp.entries {
        if r.error_code != 0 {
            let args: Vec<String> = std::env::args().skip(1).collect();
            bail!(
                "Error while executing config command with args '{}'\n{}: {}",
                args.join(" "),
                exception(r.error_code),
                r.error_message
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default()
            );
        }
    }
    // Kafka's tool names the first entity given (the user, for a user's client).
    let (t, n) = &e[0];
    let kind = if *t == "user" { "user" } else { "client" };
    Ok(match n {
        Some(n) => format!("Completed updating config for {kind} {n}.\n"),
        None => format!("Completed updating default config for {kind}s in the cluster.\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_as_java_prints_them() {
        assert_eq!(java_double(1024.0), "1024.0");
        assert_eq!(java_double(12.5), "12.5");
        assert_eq!(java_double(104_857_600.0), "1.048576E8");
        assert_eq!(java_double(1e8), "1.0E8");
        assert_eq!(java_double(0.5), "0.5");
    }

    #[test]
    fn entity_names_pair_with_types_in_order() {
        let m = ConfigsArgs::command().get_matches_from([
            "kafka-configs",
            "--bootstrap-server",
            "b:1",
            "--describe",
            "--entity-type",
            "users",
            "--entity-default",
            "--entity-type",
            "clients",
            "--entity-name",
            "c",
        ]);
        assert_eq!(entity_names(&m), vec![None, Some("c".to_string())]);
        let m = ConfigsArgs::command().get_matches_from([
            "kafka-configs",
            "--bootstrap-server",
            "b:1",
            "--describe",
            "--entity-type",
            "users",
            "--entity-default",
            "--entity-type",
            "clients",
            "--entity-default",
        ]);
        assert_eq!(entity_names(&m), vec![None, None]);
        let m = ConfigsArgs::command().get_matches_from([
            "kafka-configs",
            "--bootstrap-server",
            "b:1",
            "--describe",
            "--entity-type",
            "clients",
        ]);
        assert!(entity_names(&m).is_empty());
    }
}
