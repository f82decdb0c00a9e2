//! The ensemble's configuration as ZooKeeper writes it in `/zookeeper/config` (and in its
//! `zoo.cfg.dynamic.<version>` files), and the arithmetic of `reconfig` requests on it.
//!
//! ```text
//!  server.1=127.0.0.1:2888:3888:participant
//!  server.4=127.0.0.1:2891:3891:participant;127.0.0.1:2184
//!  version=100000002
//! ```
//!
//! One line per member, by id: host, quorum (peer) port, election port, role, and the client
//! address only when the member's line gave one. `version` is the zxid, in lower-case hex, of
//! the transaction that set this configuration (0 while reconfiguration is disabled). This
//! module does no I/O: text in, values out.

use std::collections::BTreeMap;
use std::fmt;

use sluice_config::PeerRole;

use crate::raft::{NodeId, PeerAddrs};

/// One `server.N=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLine {
    pub id: NodeId,
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
    pub role: PeerRole,
    /// `host:port` after the `;` (ZooKeeper fills in `0.0.0.0` when only a port is given).
    pub client: Option<String>,
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

impl ServerLine {
    /// Parses `server.N=host:quorumPort:electionPort[:role][;[clientHost:]clientPort]`, as a
    /// `reconfig` argument or a line of the configuration text.
    pub fn parse(spec: &str) -> Result<ServerLine, String> {
        let spec = spec.trim();
        let (key, value) = spec
            .split_once('=')
            .ok_or_else(|| format!("`{spec}`: expected server.N=host:port:port[:role][;client]"))?;
        let id: NodeId = key
            .trim()
            .strip_prefix("server.")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("`{key}`: expected server.N with N a whole number"))?;
        let (addr, client) = match value.split_once(';') {
            Some((a, c)) => (a.trim(), Some(c.trim())),
            None => (value.trim(), None),
        };
        let (host, rest) = split_host(addr)
            .ok_or_else(|| format!("server.{id}: `{addr}` is not host:port:port[:role]"))?;
        let parts: Vec<&str> = rest.split(':').collect();
        let port = |s: &str, what: &str| -> Result<u16, String> {
            s.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("server.{id}: {what} `{s}` is not a port number"))
        };
        let (quorum_port, election_port, role) = match parts.as_slice() {
            [q, e] => (port(q, "quorum port")?, port(e, "election port")?, None),
            [q, e, r] => (port(q, "quorum port")?, port(e, "election port")?, Some(*r)),
            _ => {
                return Err(format!(
                    "server.{id}: `{addr}` is not host:quorumPort:electionPort[:role]"
                ))
            }
        };
        let role = match role.map(str::to_ascii_lowercase).as_deref() {
            None | Some("participant") => PeerRole::Participant,
            Some("observer") => PeerRole::Observer,
            Some(other) => {
                return Err(format!(
                    "server.{id}: role `{other}` is neither participant nor observer"
                ))
            }
        };
        let client = match client {
            None | Some("") => None,
            Some(c) => Some(match c.rsplit_once(':') {
                Some((h, p)) if !h.is_empty() => {
                    format!("{h}:{}", port(p, "client port")?)
                }
                _ => format!("0.0.0.0:{}", port(c, "client port")?),
            }),
        };
        if host.is_empty() {
            return Err(format!("server.{id}: no host"));
        }
        Ok(ServerLine {
            id,
            host: host.to_string(),
            quorum_port,
            election_port,
            role,
            client,
        })
    }

    /// The Raft addresses of this member.
    pub fn addrs(&self) -> PeerAddrs {
        let host = bracket(&self.host);
        PeerAddrs::new(
            format!("{host}:{}", self.quorum_port),
            format!("{host}:{}", self.election_port),
        )
        .with_client(self.client.clone().unwrap_or_default())
    }

    /// The line for a Raft member, `None` if its addresses are not `host:port` pairs.
    pub fn from_addrs(id: NodeId, addrs: &PeerAddrs, role: PeerRole) -> Option<ServerLine> {
        let (host, quorum) = split_port(&addrs.peer)?;
        let (_, election) = split_port(&addrs.election)?;
        Some(ServerLine {
            id,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            quorum_port: quorum,
            election_port: election,
            role,
            client: (!addrs.client.is_empty()).then(|| addrs.client.clone()),
        })
    }
}

/// `host` and the rest of `host:a:b[:role]`, with `[v6]` hosts.
fn split_host(addr: &str) -> Option<(&str, &str)> {
    if let Some(rest) = addr.strip_prefix('[') {
        let (host, rest) = rest.split_once(']')?;
        return Some((host, rest.strip_prefix(':')?));
    }
    addr.split_once(':')
}

fn split_port(addr: &str) -> Option<(&str, u16)> {
    let (h, p) = addr.rsplit_once(':')?;
    Some((h, p.parse().ok()?))
}

impl fmt::Display for ServerLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role = match self.role {
            PeerRole::Participant => "participant",
            PeerRole::Observer => "observer",
        };
        write!(
            f,
            "server.{}={}:{}:{}:{role}",
            self.id,
            bracket(&self.host),
            self.quorum_port,
            self.election_port
        )?;
        if let Some(c) = &self.client {
            write!(f, ";{c}")?;
        }
        Ok(())
    }
}

/// The members, by id.
pub type Servers = BTreeMap<NodeId, ServerLine>;

/// The `server.N` lines of `servers`, each ending in a newline.
pub fn servers_text(servers: &Servers) -> String {
    servers.values().map(|s| format!("{s}\n")).collect()
}

/// The whole text: the lines, then `version=<hex>`.
pub fn config_text(servers: &Servers, version: i64) -> String {
    format!("{}version={version:x}", servers_text(servers))
}

/// Reads a configuration text back: its servers and version (0 when it has none, as for an
/// empty `/zookeeper/config`).
pub fn parse_config(text: &str) -> Result<(Servers, i64), String> {
    let mut servers = Servers::new();
    let mut version = 0;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(v) = line.strip_prefix("version=") {
            version = i64::from_str_radix(v, 16)
                .map_err(|_| format!("version `{v}` is not a hexadecimal number"))?;
        } else {
            let s = ServerLine::parse(line)?;
            servers.insert(s.id, s);
        }
    }
    Ok((servers, version))
}

/// The members of a Raft membership, as configuration lines.
pub fn servers_of(
    voters: &BTreeMap<NodeId, PeerAddrs>,
    learners: &BTreeMap<NodeId, PeerAddrs>,
) -> Servers {
    let voters = voters
        .iter()
        .filter_map(|(id, a)| ServerLine::from_addrs(*id, a, PeerRole::Participant));
    let learners = learners
        .iter()
        .filter_map(|(id, a)| ServerLine::from_addrs(*id, a, PeerRole::Observer));
    voters.chain(learners).map(|s| (s.id, s)).collect()
}

/// A `reconfig` request's three strings (ZooKeeper's `joiningServers`, `leavingServers`,
/// `newMembers`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconfigArgs {
    pub joining: Option<String>,
    pub leaving: Option<String>,
    pub members: Option<String>,
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Applies a request to `current`: an incremental change (servers joining, possibly replacing
/// the line of an existing id, and ids leaving; unknown ids leaving are ignored, as ZooKeeper
/// ignores them) or a whole new member list. The result must keep at least two participants,
/// as ZooKeeper requires.
pub fn apply(current: &Servers, args: &ReconfigArgs) -> Result<Servers, String> {
    let joining = non_empty(&args.joining);
    let leaving = non_empty(&args.leaving);
    let members = non_empty(&args.members);
    let next = match (members, joining.is_some() || leaving.is_some()) {
        (Some(_), true) => {
            return Err(
                "a new member list cannot be combined with servers joining or leaving".into(),
            )
        }
        (Some(list), false) => {
            let mut next = Servers::new();
            for spec in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let s = ServerLine::parse(spec)?;
                if next.insert(s.id, s).is_some() {
                    return Err(format!("`{spec}`: this server id is listed twice"));
                }
            }
            next
        }
        (None, false) => return Err("no change given: nothing joins, leaves or is listed".into()),
        (None, true) => {
            let mut next = current.clone();
            for id in leaving.into_iter().flat_map(|l| l.split(',')) {
                let id = id.trim();
                if id.is_empty() {
                    continue;
                }
                let n: NodeId = id
                    .parse()
                    .map_err(|_| format!("leaving server `{id}` is not a server id"))?;
                next.remove(&n);
            }
            for spec in joining.into_iter().flat_map(|j| j.split(',')) {
                if spec.trim().is_empty() {
                    continue;
                }
                let s = ServerLine::parse(spec)?;
                next.insert(s.id, s);
            }
            next
        }
    };
    // Two members may not share an address.
    let mut seen = BTreeMap::new();
    for s in next.values() {
        for port in [s.quorum_port, s.election_port] {
            if let Some(other) = seen.insert((s.host.clone(), port), s.id) {
                if other != s.id {
                    return Err(format!(
                        "server.{} and server.{other} both use {}:{port}",
                        s.id, s.host
                    ));
                }
                return Err(format!(
                    "server.{}: quorum and election port are the same",
                    s.id
                ));
            }
        }
    }
    let participants = next
        .values()
        .filter(|s| s.role == PeerRole::Participant)
        .count();
    if participants < 2 {
        return Err(format!(
            "the new configuration would have {participants} participant(s); at least 2 are needed"
        ));
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Servers {
        parse_config(
            "server.1=127.0.0.1:2881:3881:participant\n\
             server.2=127.0.0.1:2882:3882:participant\n\
             server.3=127.0.0.1:2883:3883:participant\n\
             version=100000000",
        )
        .unwrap()
        .0
    }

    /// The text a ZooKeeper 3.8 ensemble showed for the same sequence (see
    /// docs/compatibility.md): client addresses only where the line gave one, lower-case hex.
    #[test]
    fn formats_as_zookeeper_does() {
        let mut s = three();
        assert_eq!(
            config_text(&s, 0x1_0000_0000),
            "server.1=127.0.0.1:2881:3881:participant\n\
             server.2=127.0.0.1:2882:3882:participant\n\
             server.3=127.0.0.1:2883:3883:participant\n\
             version=100000000"
        );
        let add = ReconfigArgs {
            joining: Some("server.4=127.0.0.1:2884:3884:participant;127.0.0.1:2184".into()),
            ..Default::default()
        };
        s = apply(&s, &add).unwrap();
        assert_eq!(
            servers_text(&s).lines().last(),
            Some("server.4=127.0.0.1:2884:3884:participant;127.0.0.1:2184")
        );
        let (back, version) = parse_config(&config_text(&s, 0x1_0000_0002)).unwrap();
        assert_eq!((back, version), (s, 0x1_0000_0002));
    }

    #[test]
    fn parses_the_forms_zookeeper_accepts() {
        let l = ServerLine::parse("server.7=h:1:2").unwrap();
        assert_eq!((l.role, l.client), (PeerRole::Participant, None));
        let l = ServerLine::parse("server.7=h:1:2:observer;2181").unwrap();
        assert_eq!(l.role, PeerRole::Observer);
        assert_eq!(l.client.as_deref(), Some("0.0.0.0:2181"));
        assert_eq!(
            l.to_string(),
            "server.7=h:1:2:observer;0.0.0.0:2181",
            "a lone client port gets the wildcard address"
        );
        let l = ServerLine::parse("server.8=[::1]:1:2:participant;[::1]:2181").unwrap();
        assert_eq!(l.host, "::1");
        assert_eq!(l.addrs().peer, "[::1]:1");
        assert_eq!(
            ServerLine::from_addrs(8, &l.addrs(), PeerRole::Participant),
            Some(l)
        );
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        for (spec, expect) in [
            ("server.x=h:1:2", "server.N"),
            ("server.1=h:1", "host:quorumPort"),
            ("server.1=h:0:2", "quorum port `0`"),
            ("server.1=h:1:2:voter", "role `voter`"),
            ("server.1=h:1:2;client", "client port"),
            ("server.1", "expected server.N="),
        ] {
            let e = ServerLine::parse(spec).unwrap_err();
            assert!(e.contains(expect), "{spec}: {e}");
        }
    }

    #[test]
    fn incremental_and_whole_list_changes() {
        let s = three();
        let removed = apply(
            &s,
            &ReconfigArgs {
                leaving: Some("3".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(removed.keys().copied().collect::<Vec<_>>(), [1, 2]);
        // Removing an id that is not there changes nothing (ZooKeeper commits it anyway).
        let same = apply(
            &s,
            &ReconfigArgs {
                leaving: Some("9".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(same, s);
        let members = apply(
            &s,
            &ReconfigArgs {
                members: Some(
                    "server.1=127.0.0.1:2881:3881,server.5=127.0.0.1:2885:3885;2185".into(),
                ),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(members.keys().copied().collect::<Vec<_>>(), [1, 5]);
    }

    #[test]
    fn refused_changes() {
        let s = three();
        let err = |a: ReconfigArgs| apply(&s, &a).unwrap_err();
        assert!(err(ReconfigArgs {
            leaving: Some("1,2".into()),
            ..Default::default()
        })
        .contains("at least 2"));
        assert!(err(ReconfigArgs {
            members: Some("server.1=127.0.0.1:2881:3881".into()),
            ..Default::default()
        })
        .contains("at least 2"));
        assert!(err(ReconfigArgs {
            members: Some("server.1=h:1:2,server.2=h:3:4".into()),
            leaving: Some("3".into()),
            ..Default::default()
        })
        .contains("cannot be combined"));
        assert!(err(ReconfigArgs::default()).contains("no change"));
        assert!(err(ReconfigArgs {
            joining: Some("server.4=127.0.0.1:2881:3999".into()),
            ..Default::default()
        })
        .contains("both use 127.0.0.1:2881"));
        assert!(err(ReconfigArgs {
            leaving: Some("two".into()),
            ..Default::default()
        })
        .contains("`two`"));
    }
}
