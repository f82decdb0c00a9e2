//! ZooKeeper 3.5+ dynamic reconfiguration on a coord ensemble of real processes: servers added
//! and removed (the leader among them) with `reconfig` while a client writes, `/zookeeper/config`
//! as ZooKeeper 3.8 writes it, the new membership across a restart of every member, ZooKeeper's
//! error codes for refused changes, and the real zkCli (from ZooKeeper 3.8's jar) driving it.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_e2e::{CoordCluster, CoordNode, ZooKeeperEnsemble};
use zookeeper_client as zk;

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

async fn connect(hosts: &str) -> zk::Client {
    zk::Client::connector()
        .with_session_timeout(Duration::from_secs(6))
        .connect(hosts)
        .await
        .unwrap_or_else(|e| panic!("connect {hosts}: {e}"))
}

fn serving(n: &CoordNode) -> bool {
    matches!(
        sluice_e2e::mode(n.client).as_deref(),
        Some("leader" | "follower")
    )
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `reconfig` through `via`, retried while the ensemble is between leaders (a connection
/// loss answers a change whose outcome is not known: the config node tells).
async fn reconfig(
    via: &str,
    joining: &[&str],
    leaving: &[&str],
) -> Result<(String, zk::Stat), zk::Error> {
    let c = connect(via).await;
    let update = zk::EnsembleUpdate::Incremental {
        joinings: joining.iter().copied(),
        leavings: leaving.iter().copied(),
    };
    c.update_ensemble(update, None)
        .await
        .map(|(data, stat)| (String::from_utf8(data).unwrap(), stat))
}

/// The `server.N` lines of a configuration text, by id.
fn lines(config: &str) -> BTreeMap<u64, String> {
    config
        .lines()
        .filter_map(|l| {
            let id = l.strip_prefix("server.")?.split('=').next()?.parse().ok()?;
            Some((id, l.to_string()))
        })
        .collect()
}

fn version(config: &str) -> i64 {
    let v = config
        .lines()
        .find_map(|l| l.strip_prefix("version="))
        .unwrap_or_else(|| panic!("no version line in {config:?}"));
    i64::from_str_radix(v, 16).unwrap()
}

/// The configuration `node` serves, after a sync; waits for the leader of a new ensemble to
/// have written the first one.
async fn config_at(node: &CoordNode) -> (String, zk::Stat) {
    let c = connect(&node.client.to_string()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        c.sync("/zookeeper/config").await.unwrap();
        let (data, stat) = c.get_config().await.unwrap();
        if !data.is_empty() || Instant::now() > deadline {
            return (String::from_utf8(data).unwrap(), stat);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn static_line(n: &CoordNode) -> String {
    format!(
        "server.{}=127.0.0.1:{}:{}:participant",
        n.id, n.peer_port, n.election_port
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_added_and_removed_under_writes_keep_every_acknowledged_write_and_survive_a_restart(
) {
    let mut cluster = CoordCluster::start(3, "reconfigEnabled=true\nskipACL=yes\n");
    let started = Instant::now();

    // A static ensemble's configuration, as ZooKeeper 3.8 shows it with reconfigEnabled: the
    // server lines without client addresses (clientPort is a separate key) and a version.
    let (text, stat) = config_at(&cluster.nodes[0]).await;
    let expect: Vec<String> = cluster.nodes.iter().map(static_line).collect();
    assert_eq!(
        lines(&text).into_values().collect::<Vec<_>>(),
        expect,
        "{text}"
    );
    let v0 = version(&text);
    assert!(v0 > 0, "{text}");
    assert_eq!((stat.mzxid, stat.version), (v0, -1), "{stat:?}");

    // A client writes all along, through every node it knows.
    let hosts = cluster.connect_string();
    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop) = (acked.clone(), stop.clone());
        tokio::spawn(async move {
            let c = connect(&hosts).await;
            let _ = c.create("/load", b"", &persistent()).await;
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let path = format!("/load/k{i}");
                match tokio::time::timeout(
                    Duration::from_secs(5),
                    c.create(&path, b"v", &persistent()),
                )
                .await
                {
                    Ok(Ok(_)) | Ok(Err(zk::Error::NodeExists)) => {
                        acked.lock().unwrap().push(i);
                        i += 1;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        })
    };

    // Servers 4 and 5 start as ZooKeeper's guide says: their files list the ensemble and
    // themselves. They do not form an ensemble of their own and serve nobody until added.
    let four = cluster.add_node("reconfigEnabled=true\nskipACL=yes\n");
    let five = cluster.add_node("reconfigEnabled=true\nskipACL=yes\n");
    std::thread::sleep(Duration::from_secs(2));
    for i in [four, five] {
        assert!(
            !serving(&cluster.nodes[i]),
            "node {} serves before it was added:\n{}",
            cluster.nodes[i].id,
            cluster.nodes[i].log_text()
        );
    }

    let via = cluster.nodes[1].client.to_string();
    // zkCli's `config -w`: a watch on the configuration, set on another member.
    let watching = connect(&cluster.nodes[2].client.to_string()).await;
    let (_, _, watcher) = watching.get_and_watch_config().await.unwrap();
    let spec4 = cluster.nodes[four].server_spec();
    let (after4, stat4) = reconfig(&via, &[&spec4], &[]).await.expect("add server 4");
    let event = tokio::time::timeout(Duration::from_secs(10), watcher.changed())
        .await
        .expect("the configuration watch fires");
    assert_eq!(
        (event.event_type, event.path.as_str()),
        (zk::EventType::NodeDataChanged, "/zookeeper/config")
    );
    assert_eq!(lines(&after4).get(&4), Some(&spec4), "{after4}");
    assert!(version(&after4) > v0, "{after4}");
    assert_eq!(stat4.mzxid, version(&after4));
    let spec5 = cluster.nodes[five].server_spec();
    let (after5, _) = reconfig(&via, &[&spec5], &[]).await.expect("add server 5");
    assert_eq!(lines(&after5).len(), 5, "{after5}");
    assert!(version(&after5) > version(&after4));
    wait_until("servers 4 and 5 serve", Duration::from_secs(30), || {
        serving(&cluster.nodes[four]) && serving(&cluster.nodes[five])
    });

    // Remove the leader, through a member that stays.
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let leader_id = cluster.nodes[leader].id;
    let via = cluster.nodes[four].client.to_string();
    let removed_leader = reconfig(&via, &[], &[&leader_id.to_string()]).await;
    // The reply may be lost with the leader; the configuration node says what happened.
    let deadline = Instant::now() + Duration::from_secs(30);
    let after_leader = loop {
        if let Ok((text, _)) = &removed_leader {
            break text.clone();
        }
        let (text, _) = config_at(&cluster.nodes[four]).await;
        if !lines(&text).contains_key(&leader_id) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "leader {leader_id} never removed: {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        !lines(&after_leader).contains_key(&leader_id),
        "{after_leader}"
    );
    assert_eq!(lines(&after_leader).len(), 4);
    eprintln!(
        "leader {leader_id} removed ({}):\n{after_leader}",
        if removed_leader.is_ok() {
            "answered"
        } else {
            "answer lost"
        }
    );

    // Then one more of the original three, so that 4 and 5 are the majority.
    let other = cluster
        .nodes
        .iter()
        .find(|n| n.id <= 3 && n.id != leader_id)
        .map(|n| n.id)
        .unwrap();
    let (final_text, _) = reconfig(&via, &[], &[&other.to_string()])
        .await
        .expect("remove a follower");
    let members: Vec<u64> = lines(&final_text).into_keys().collect();
    // `conf` ends with the membership, as ZooKeeper 3.5+ prints it.
    let conf = sluice_e2e::four_letter_word(cluster.nodes[four].client, "conf");
    assert!(
        conf.ends_with(&format!("membership: \n{final_text}"))
            && !conf
                .split("membership:")
                .next()
                .unwrap()
                .contains("server."),
        "{conf}"
    );
    assert_eq!(members.len(), 3, "{final_text}");
    assert!(members.contains(&4) && members.contains(&5), "{final_text}");

    // Writes go on through the change; then every acknowledged one is on every member.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 20, "only {} writes acknowledged", acked.len());
    let remaining: Vec<usize> = members.iter().map(|id| cluster.index_of(*id)).collect();
    let check_all = |cluster: &CoordCluster| {
        let cluster_nodes: Vec<(u64, String)> = remaining
            .iter()
            .map(|i| (cluster.nodes[*i].id, cluster.nodes[*i].client.to_string()))
            .collect();
        let acked = acked.clone();
        let final_text = final_text.clone();
        async move {
            for (id, addr) in cluster_nodes {
                let c = connect(&addr).await;
                c.sync("/load").await.unwrap();
                let (children, _) = c.get_children("/load").await.unwrap();
                let have: std::collections::HashSet<String> = children.into_iter().collect();
                let missing: Vec<u64> = acked
                    .iter()
                    .filter(|k| !have.contains(&format!("k{k}")))
                    .copied()
                    .collect();
                assert!(
                    missing.is_empty(),
                    "node {id} lacks acknowledged writes {missing:?}"
                );
                let (data, _) = c.get_config().await.unwrap();
                assert_eq!(String::from_utf8(data).unwrap(), final_text, "node {id}");
            }
        }
    };
    check_all(&cluster).await;

    // The removed members serve nobody; the old leader stepped down.
    let old_leader_log = cluster.nodes[cluster.index_of(leader_id)].log_text();
    assert!(
        old_leader_log.contains("not part of the ensemble's membership"),
        "{old_leader_log}"
    );
    for id in [leader_id, other] {
        let i = cluster.index_of(id);
        wait_until(
            &format!("removed node {id} stops serving"),
            Duration::from_secs(20),
            || !serving(&cluster.nodes[i]),
        );
    }

    // Every process stops; the new membership comes back from the members' own storage
    // (their files still list servers 1-3 or 1-5).
    for n in cluster.nodes.iter_mut() {
        n.kill();
    }
    for i in remaining
        .iter()
        .copied()
        .chain([cluster.index_of(leader_id)])
    {
        cluster.start_node(i);
    }
    wait_until(
        "the new ensemble serves again",
        Duration::from_secs(30),
        || remaining.iter().all(|i| serving(&cluster.nodes[*i])),
    );
    check_all(&cluster).await;
    // A removed member restarted from its storage still serves nobody.
    std::thread::sleep(Duration::from_secs(2));
    assert!(!serving(&cluster.nodes[cluster.index_of(leader_id)]));
    eprintln!(
        "{} acknowledged writes, all present; took {:?}",
        acked.len(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_changes_get_zookeepers_error_codes() {
    let cluster = CoordCluster::start(3, "reconfigEnabled=true\nskipACL=yes\ninitLimit=4\n");
    let via = cluster.nodes[0].client.to_string();
    let c = connect(&via).await;
    let (before, _) = config_at(&cluster.nodes[0]).await;

    // A stale fromConfig version.
    let update = zk::EnsembleUpdate::Incremental {
        joinings: Vec::<&str>::new().into_iter(),
        leavings: vec!["3"].into_iter(),
    };
    let stale = version(&before) - 1;
    assert!(matches!(
        c.update_ensemble(update, Some(stale)).await,
        Err(zk::Error::BadVersion)
    ));
    // One participant left, a malformed line, both modes at once.
    for (joining, leaving) in [
        (vec![], vec!["2,3"]),
        (vec!["server.4=127.0.0.1:notaport:1"], vec![]),
    ] {
        let r = reconfig(&via, &joining, &leaving).await;
        assert!(
            matches!(r, Err(zk::Error::BadArguments(_))),
            "{joining:?} {leaving:?}: {r:?}"
        );
    }
    // New members that never start: no quorum of the new configuration.
    let ports = sluice_e2e::free_ports(4);
    let members = format!(
        "server.1=127.0.0.1:{}:{}:participant,server.6=127.0.0.1:{}:{}:participant,server.7=127.0.0.1:{}:{}:participant",
        cluster.nodes[0].peer_port, cluster.nodes[0].election_port, ports[0], ports[1], ports[2], ports[3]
    );
    // While that change waits for them, a second one (through another member) is refused.
    let waiting = {
        let c = connect(&via).await;
        let members = members.clone();
        tokio::spawn(async move {
            c.update_ensemble(
                zk::EnsembleUpdate::New {
                    ensemble: members.split(','),
                },
                None,
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = reconfig(&cluster.nodes[2].client.to_string(), &[], &["9"]).await;
    assert!(
        matches!(second, Err(zk::Error::UnexpectedErrorCode(-14))),
        "{second:?}"
    );
    let r = waiting.await.unwrap();
    assert!(
        matches!(r, Err(zk::Error::UnexpectedErrorCode(-13))),
        "{r:?}"
    );
    // Nothing changed, and the ensemble still serves.
    let (after, _) = c.get_config().await.unwrap();
    assert_eq!(String::from_utf8(after).unwrap(), before);
    c.create("/still-writable", b"", &persistent())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconfig_is_disabled_by_default_and_the_config_node_shows_version_zero() {
    let cluster = CoordCluster::start(3, "");
    let (text, stat) = config_at(&cluster.nodes[0]).await;
    let mut expect: String = cluster
        .nodes
        .iter()
        .map(|n| static_line(n) + "\n")
        .collect();
    expect.push_str("version=0");
    assert_eq!(text, expect);
    assert_eq!((stat.mzxid, stat.version), (0, -1));
    let r = reconfig(&cluster.nodes[0].client.to_string(), &[], &["3"]).await;
    assert!(matches!(r, Err(zk::Error::ReconfigDisabled)), "{r:?}");
}

/// Runs ZooKeeper 3.8's zkCli (ZooKeeperMain, no JLine) against `server` with `commands` on
/// stdin; returns what it printed on stdout and on stderr, without its banner and session
/// events.
fn zkcli(server: &str, commands: &str) -> (String, String) {
    let mut child = Command::new("java")
        .arg("-cp")
        .arg(sluice_e2e::zookeeper_server_classpath())
        .arg("org.apache.zookeeper.ZooKeeperMain")
        .arg("-server")
        .arg(server)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run java (install a JRE)");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(commands.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let clean = |bytes: &[u8]| -> String {
        String::from_utf8_lossy(bytes)
            .lines()
            .filter(|l| {
                !l.is_empty()
                    && !l.starts_with("WATCHER::")
                    && !l.starts_with("WatchedEvent")
                    && !l.starts_with("Connecting to")
                    && !l.starts_with("Welcome to ZooKeeper")
                    && !l.starts_with("JLine support")
            })
            .map(|l| format!("{l}\n"))
            .collect()
    };
    (clean(&out.stdout), clean(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeepers_own_zkcli_adds_a_server_with_the_super_users_digest() {
    // super:secret, as DigestAuthenticationProvider hashes it.
    let mut cluster = CoordCluster::start(
        3,
        "reconfigEnabled=true\nDigestAuthenticationProvider.superDigest=super:lK75jTNcA+U9vtVEw5vB51mj/w4=\n",
    );
    let four = cluster.add_node("reconfigEnabled=true\n");
    let spec = cluster.nodes[four].server_spec();
    let via = cluster.nodes[0].client.to_string();
    config_at(&cluster.nodes[0]).await;
    let (out, err) = zkcli(
        &via,
        &format!(
            "config\nreconfig -add {spec}\naddauth digest super:secret\nreconfig -add {spec}\nconfig\nquit\n"
        ),
    );
    let statics: String = cluster.nodes[..3]
        .iter()
        .map(|n| static_line(n) + "\n")
        .collect();
    let (now, _) = config_at(&cluster.nodes[0]).await;
    let v_before = {
        // The version before the change is the one `config` printed first.
        let first = out.lines().find(|l| l.starts_with("version=")).unwrap();
        first.trim_start_matches("version=").to_string()
    };
    // Without the super user's digest: refused, as ZooKeeper 3.8 refuses it.
    assert_eq!(err, "Insufficient permission : \n");
    let expected = format!(
        "{statics}version={v_before}\n\
         Committed new configuration:\n\
         {statics}{spec}\n\
         version={v}\n\
         {statics}{spec}\n\
         version={v}\n",
        v = format!("{:x}", version(&now)),
    );
    assert_eq!(out, expected);
    wait_until("server 4 serves", Duration::from_secs(30), || {
        serving(&cluster.nodes[four])
    });
}

/// One step of the side-by-side run: what the system answered, with its own ports replaced by
/// names (`Q1` quorum port of server 1, `E1`, `C1`, …) and the version by `V`.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Config(String),
    Error(String),
}

fn normalize(text: &str, names: &[(u16, String)]) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with("version=") {
                return "version=V".to_string();
            }
            let mut l = l.to_string();
            for (port, name) in names {
                l = l.replace(&format!(":{port}"), &format!(":{name}"));
            }
            l
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The same sequence of reconfigurations on a system reached at `client`: the static ensemble's
/// configuration, server 4 added (never started), 5 in and 2 and 4 out (5 never started: a
/// quorum of {1, 3, 5} is still up), a stale version, 1 and 2 out (no quorum of {3, 5} is
/// up), 1 and 3 out (one participant left), server 4 removed again and an unknown id removed
/// (both changing nothing but the version). Returns what each step answered and the versions
/// seen.
async fn reconfig_sequence(
    client: &str,
    extra_ports: &[(u16, u16, u16)],
    names: &[(u16, String)],
) -> (Vec<Seen>, Vec<i64>) {
    let mut c = connect(client).await;
    let mut seen = Vec::new();
    let mut versions = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (first, stat) = loop {
        let (data, stat) = c.get_config().await.unwrap();
        if !data.is_empty() || Instant::now() > deadline {
            break (String::from_utf8(data).unwrap(), stat);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((stat.mzxid, stat.version), (version(&first), -1), "{first}");
    versions.push(version(&first));
    seen.push(Seen::Config(normalize(&first, names)));
    let spec = |id: u64, (cl, q, e): (u16, u16, u16)| {
        format!("server.{id}=127.0.0.1:{q}:{e}:participant;127.0.0.1:{cl}")
    };
    let s4 = spec(4, extra_ports[0]);
    let s5 = spec(5, extra_ports[1]);
    let steps: Vec<(Vec<String>, Vec<String>, Option<i64>)> = vec![
        (vec![s4.clone()], vec![], None),
        (vec![s5.clone()], vec!["2".into(), "4".into()], None),
        (vec![], vec!["4".into()], Some(1)),
        (vec![], vec!["1,2".into()], None),
        (vec![], vec!["1,3".into()], None),
        (vec![], vec!["4".into()], None),
        (vec![], vec!["9".into()], None),
    ];
    for (joining, leaving, from) in steps {
        let update = zk::EnsembleUpdate::Incremental {
            joinings: joining
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .into_iter(),
            leavings: leaving
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .into_iter(),
        };
        match c.update_ensemble(update, from).await {
            Ok((data, stat)) => {
                let text = String::from_utf8(data).unwrap();
                assert_eq!(stat.mzxid, version(&text), "{text}");
                versions.push(version(&text));
                seen.push(Seen::Config(normalize(&text, names)));
            }
            // The leader was removed and took the answer with it (ZooKeeper and coord alike,
            // when the server removed happens to lead): the configuration node tells.
            Err(zk::Error::ConnectionLoss) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                c = connect(client).await;
                c.sync("/zookeeper/config").await.unwrap();
                let text = String::from_utf8(c.get_config().await.unwrap().0).unwrap();
                versions.push(version(&text));
                seen.push(Seen::Config(normalize(&text, names)));
            }
            Err(e) => seen.push(Seen::Error(format!("{e:?}"))),
        }
    }
    (seen, versions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_reconfigurations_give_what_zookeeper_3_8_gives() {
    let extra = "reconfigEnabled=true\nskipACL=yes\n";
    let names = |servers: &[(u16, u16, u16)]| -> Vec<(u16, String)> {
        servers
            .iter()
            .enumerate()
            .flat_map(|(i, (c, q, e))| {
                let n = i + 1;
                [
                    (*c, format!("C{n}")),
                    (*q, format!("Q{n}")),
                    (*e, format!("E{n}")),
                ]
            })
            .collect()
    };
    // Ports for the two servers that are added but never started, drawn once the ensemble's
    // own are taken: drawn before, one could be handed to the ensemble as well, and the
    // answers' ports would then be named after the wrong server.
    let extra_ports_besides = |taken: &[(u16, u16, u16)]| -> Vec<(u16, u16, u16)> {
        let taken: Vec<u16> = taken.iter().flat_map(|(c, q, e)| [*c, *q, *e]).collect();
        loop {
            let ports = sluice_e2e::free_ports(6);
            if ports.iter().all(|p| !taken.contains(p)) {
                return ports.chunks(3).map(|c| (c[0], c[1], c[2])).collect();
            }
        }
    };

    let started = Instant::now();
    let zk_seen = {
        let zk = ZooKeeperEnsemble::start(extra);
        let extra_ports = extra_ports_besides(&zk.ports);
        let mut all = zk.ports.clone();
        all.extend(&extra_ports);
        let client = format!("127.0.0.1:{}", zk.ports[0].0);
        reconfig_sequence(&client, &extra_ports, &names(&all)).await
    };
    let zk_took = started.elapsed();

    let cluster = CoordCluster::start(3, &format!("{extra}initLimit=4\n"));
    let mut all: Vec<(u16, u16, u16)> = cluster
        .nodes
        .iter()
        .map(|n| (n.client.port(), n.peer_port, n.election_port))
        .collect();
    let extra_ports = extra_ports_besides(&all);
    all.extend(&extra_ports);
    let coord_seen = reconfig_sequence(
        &cluster.nodes[0].client.to_string(),
        &extra_ports,
        &names(&all),
    )
    .await;

    // Same texts (ports and versions aside) and same refusals, step by step.
    assert_eq!(coord_seen.0, zk_seen.0);
    // Versions: zxids of the changes, strictly increasing, a removal of an unknown id included.
    for versions in [&zk_seen.1, &coord_seen.1] {
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:x?}");
    }
    eprintln!(
        "ZooKeeper 3.8 versions {:x?} ({zk_took:?}), coord {:x?}\nanswers: {:?}",
        zk_seen.1,
        coord_seen.1,
        zk_seen
            .0
            .iter()
            .map(|s| match s {
                Seen::Config(_) => "config".to_string(),
                Seen::Error(e) => e.clone(),
            })
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_is_added_promoted_and_removed() {
    let mut cluster = CoordCluster::start(3, "reconfigEnabled=true\nskipACL=yes\n");
    let four = cluster.add_node("reconfigEnabled=true\nskipACL=yes\n");
    let via = cluster.nodes[0].client.to_string();
    let observer = cluster.nodes[four]
        .server_spec()
        .replace(":participant;", ":observer;");
    let (text, _) = reconfig(&via, &[&observer], &[])
        .await
        .expect("add an observer");
    assert_eq!(lines(&text).get(&4), Some(&observer), "{text}");
    let n4 = cluster.nodes[four].client;
    wait_until("the observer serves", Duration::from_secs(30), || {
        sluice_e2e::mode(n4).as_deref() == Some("observer")
    });
    // It reads what the others write.
    let c = connect(&via).await;
    c.create("/seen-by-observer", b"x", &persistent())
        .await
        .unwrap();
    let o = connect(&n4.to_string()).await;
    o.sync("/seen-by-observer").await.unwrap();
    assert_eq!(o.get_data("/seen-by-observer").await.unwrap().0, b"x");

    let participant = cluster.nodes[four].server_spec();
    let (text, _) = reconfig(&via, &[&participant], &[])
        .await
        .expect("promote it");
    assert_eq!(lines(&text).get(&4), Some(&participant), "{text}");
    wait_until(
        "the promoted member follows",
        Duration::from_secs(30),
        || matches!(sluice_e2e::mode(n4).as_deref(), Some("follower" | "leader")),
    );
    let (text, _) = reconfig(&via, &[], &["4"]).await.expect("remove it");
    assert_eq!(lines(&text).len(), 3, "{text}");
    wait_until(
        "the removed member stops serving",
        Duration::from_secs(30),
        || sluice_e2e::mode(n4).is_none(),
    );
}
