//! `zookeeper-shell` against a real standalone `coord` process: one-shot and interactive (stdin
//! piped, and on a terminal through `script`), with the exact text zkCli.sh prints.

use std::io::Write;
use std::process::{Command, Stdio};

use sluice_cli::zookeeper_shell::java_date;
use sluice_e2e::CoordCluster;

const SHELL: &str = env!("CARGO_BIN_EXE_zookeeper-shell");

/// What one run of the shell printed, and its exit status.
#[derive(Debug)]
struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

/// Runs the shell with `args`; `stdin` is piped in (and closed) when given, else empty.
fn shell(args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = Command::new(SHELL)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn zookeeper-shell");
    let input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        let mut input = input;
        input.write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Run {
        status: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// A one-shot command against `server`.
fn one_shot(server: &str, command: &[&str]) -> Run {
    let mut args = vec![server];
    args.extend_from_slice(command);
    shell(&args, None)
}

/// An interactive session fed `script` on stdin.
fn piped(server: &str, script: &str) -> Run {
    shell(&["-server", server], Some(script))
}

/// What zkCli prints on stdout before a one-shot command's output.
fn preamble(server: &str) -> String {
    format!(
        "Connecting to {server}\n\nWATCHER::\n\nWatchedEvent state:SyncConnected type:None path:null\n"
    )
}

/// What zkCli prints on stdout when it starts reading commands from a pipe.
fn interactive_preamble(server: &str) -> String {
    format!(
        "Connecting to {server}\nWelcome to ZooKeeper!\nJLine support is disabled\n\n\
         WATCHER::\n\nWatchedEvent state:SyncConnected type:None path:null\n"
    )
}

fn watcher(kind: &str, path: &str) -> String {
    format!("\nWATCHER::\n\nWatchedEvent state:SyncConnected type:{kind} path:{path}\n")
}

/// Replaces the values that change from run to run (zxids, times, session ids) in stat
/// blocks with placeholders, after checking their form.
fn normalize(text: &str) -> String {
    text.lines()
        .map(|line| {
            for key in ["cZxid = 0x", "mZxid = 0x", "pZxid = 0x"] {
                if let Some(hex) = line.strip_prefix(key) {
                    assert!(i64::from_str_radix(hex, 16).is_ok(), "{line}");
                    return format!("{key}ZXID");
                }
            }
            for key in ["ctime = ", "mtime = "] {
                if let Some(date) = line.strip_prefix(key) {
                    assert!(looks_like_java_date(date), "{line}");
                    return format!("{key}DATE");
                }
            }
            if let Some(owner) = line.strip_prefix("ephemeralOwner = 0x") {
                if owner != "0" {
                    return "ephemeralOwner = 0xOWNER".to_string();
                }
            }
            line.to_string()
        })
        .map(|line| line + "\n")
        .collect()
}

/// `Wed Nov 25 12:39:51 UTC 2026`, within a day of now.
fn looks_like_java_date(date: &str) -> bool {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let day = 86_400_000;
    (-1..=1).any(|d| java_date(now_ms + d * day)[..10] == date[..10])
        && date.len() == 28
        && &date[19..24] == " UTC "
}

/// A stat block with placeholders, as [`normalize`] leaves it.
fn stat_block(
    cversion: i32,
    version: i32,
    aversion: i32,
    ephemeral: bool,
    len: i32,
    children: i32,
) -> String {
    let owner = if ephemeral { "OWNER" } else { "0" };
    format!(
        "cZxid = 0xZXID\nctime = DATE\nmZxid = 0xZXID\nmtime = DATE\npZxid = 0xZXID\n\
         cversion = {cversion}\ndataVersion = {version}\naclVersion = {aversion}\n\
         ephemeralOwner = 0x{owner}\ndataLength = {len}\nnumChildren = {children}\n"
    )
}

/// The stat of `path` read with an independent client, for checking values exactly.
fn stat_of(server: &str, path: &str) -> zookeeper_client::Stat {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = zookeeper_client::Client::connect(server).await.unwrap();
        client.check_stat(path).await.unwrap().expect("node exists")
    })
}

fn server(cluster: &CoordCluster) -> String {
    cluster.nodes[0].client.to_string()
}

#[test]
fn one_shot_commands_print_like_zkcli() {
    let cluster = CoordCluster::start(1, "");
    let s = server(&cluster);

    let run = one_shot(&s, &["create", "/app", "hello"]);
    assert_eq!(
        (run.status, &run.stderr),
        (0, &"Created /app\n".to_string())
    );
    assert_eq!(run.stdout, preamble(&s));

    let run = one_shot(&s, &["get", "/app"]);
    assert_eq!(run.status, 0, "{run:?}");
    assert_eq!(run.stdout, format!("{}hello\n", preamble(&s)));
    assert_eq!(run.stderr, "");

    // get -s: the data line, then the stat block with exact values.
    let run = one_shot(&s, &["get", "-s", "/app"]);
    let st = stat_of(&s, "/app");
    let expected = format!(
        "{}hello\ncZxid = 0x{:x}\nctime = {}\nmZxid = 0x{:x}\nmtime = {}\npZxid = 0x{:x}\n\
         cversion = 0\ndataVersion = 0\naclVersion = 0\nephemeralOwner = 0x0\n\
         dataLength = 5\nnumChildren = 0\n",
        preamble(&s),
        st.czxid,
        java_date(st.ctime),
        st.mzxid,
        java_date(st.mtime),
        st.pzxid
    );
    assert_eq!(run.stdout, expected);

    let run = one_shot(&s, &["set", "-s", "/app", "world"]);
    assert_eq!(run.status, 0, "{run:?}");
    let st = stat_of(&s, "/app");
    assert!(
        run.stdout.contains(&format!(
            "mZxid = 0x{:x}\nmtime = {}\n",
            st.mzxid,
            java_date(st.mtime)
        )),
        "{run:?}"
    );
    assert_eq!(
        normalize(&run.stdout),
        normalize(&preamble(&s)) + &stat_block(0, 1, 0, false, 5, 0)
    );

    let run = one_shot(&s, &["stat", "/app"]);
    assert_eq!(
        normalize(&run.stdout),
        normalize(&preamble(&s)) + &stat_block(0, 1, 0, false, 5, 0)
    );

    // A node created without data reads as zkCli's `null`.
    assert_eq!(one_shot(&s, &["create", "/app/empty"]).status, 0);
    assert_eq!(
        one_shot(&s, &["get", "/app/empty"]).stdout,
        format!("{}null\n", preamble(&s))
    );

    let run = one_shot(&s, &["ls", "/"]);
    assert_eq!(run.stdout, format!("{}[app, zookeeper]\n", preamble(&s)));
    let run = one_shot(&s, &["ls", "-s", "/app"]);
    assert_eq!(
        normalize(&run.stdout),
        normalize(&preamble(&s)) + "[empty]\n" + &stat_block(1, 1, 0, false, 5, 1)
    );

    let run = one_shot(&s, &["delete", "/app/empty"]);
    assert_eq!((run.status, run.stderr.as_str()), (0, ""));
    let run = one_shot(&s, &["deleteall", "/app"]);
    assert_eq!((run.status, run.stderr.as_str()), (0, ""));
    assert_eq!(
        one_shot(&s, &["ls", "/"]).stdout,
        format!("{}[zookeeper]\n", preamble(&s))
    );
}

#[test]
fn one_shot_failures_exit_non_zero_with_zkcli_messages() {
    let cluster = CoordCluster::start(1, "");
    let s = server(&cluster);
    assert_eq!(one_shot(&s, &["create", "/a", "x"]).status, 0);
    assert_eq!(one_shot(&s, &["create", "/a/b"]).status, 0);

    let cases: &[(&[&str], &str)] = &[
        (&["get", "/nope"], "Node does not exist: /nope"),
        (&["ls", "/nope"], "Node does not exist: /nope"),
        (&["ls", "-R", "/nope"], "Node does not exist: /nope"),
        (&["stat", "/nope"], "Node does not exist: /nope"),
        (&["set", "/nope", "x"], "Node does not exist: /nope"),
        (&["delete", "/nope"], "Node does not exist: /nope"),
        (&["deleteall", "/nope"], "Node does not exist: /nope"),
        (&["getAcl", "/nope"], "Node does not exist: /nope"),
        (
            &["setAcl", "/nope", "world:anyone:r"],
            "Node does not exist: /nope",
        ),
        (
            &["getAllChildrenNumber", "/nope"],
            "Node does not exist: /nope",
        ),
        (&["create", "/a"], "Node already exists: /a"),
        (&["create", "/"], "Node already exists: /"),
        (&["create", "/x/y"], "Node does not exist: /x/y"),
        (&["delete", "/a"], "Node not empty: /a"),
        (&["delete", "/"], "Arguments are not valid : /"),
        (
            &["set", "-v", "7", "/a", "y"],
            "version No is not valid : /a",
        ),
        (
            &["delete", "-v", "7", "/a/b"],
            "version No is not valid : /a/b",
        ),
        (
            &["setAcl", "-v", "7", "/a", "world:anyone:cdrwa"],
            "version No is not valid : /a",
        ),
        (&["get", "a"], "Path must start with / character"),
        (&["create", "/a/"], "Path must not end with / character"),
        (
            &["create", "/a//b"],
            "Invalid path string \"/a//b\" caused by empty node name specified @3",
        ),
        (
            &["get", "/a/.."],
            "Invalid path string \"/a/..\" caused by relative paths not allowed @4",
        ),
        (&["ls"], "ls [-s] [-w] [-R] path"),
        (&["get"], "get [-s] [-w] path"),
        (&["stat"], "stat [-w] path"),
        (
            &["create"],
            "create [-s] [-e] [-c] [-t ttl] path [data] [acl]",
        ),
        (&["set", "/a"], "set [-s] [-v version] path data"),
        (&["delete"], "delete [-v version] path"),
        (&["deleteall"], "deleteall path [-b batch size]"),
        (&["getAcl"], "getAcl [-s] path"),
        (&["setAcl", "/a"], "setAcl [-s] [-v version] [-R] path acl"),
        (&["addauth"], "addauth scheme auth"),
        (&["sync"], "sync path"),
        (&["getAllChildrenNumber"], "getAllChildrenNumber path"),
        (&["ls", "-x", "/"], "Unrecognized option: -x"),
        (&["set", "/a", "-1"], "Unrecognized option: -1"),
        (&["set", "/a", "y", "-v"], "Missing argument for option: v"),
        (
            &["set", "-v", "x", "/a", "y"],
            "-v argument must be an int value",
        ),
        (
            &["deleteall", "-b", "x", "/a"],
            "-b argument must be an int value",
        ),
        (
            &["create", "-t", "abc", "/t"],
            "-t argument must be a long value",
        ),
        (
            &["create", "-t", "0", "/t"],
            "ttl must be positive and cannot be larger than: 1099511627775",
        ),
        (
            &["create", "-e", "-t", "5", "/t"],
            "TTLs cannot be used with Ephemeral znodes",
        ),
        (
            &["create", "-c", "-t", "5", "/t"],
            "TTLs cannot be used with Container znodes",
        ),
        (
            &["create", "-c", "-s", "/t"],
            "-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential.",
        ),
    ];
    for (command, message) in cases {
        let run = one_shot(&s, command);
        assert_eq!(run.status, 1, "{command:?}: {run:?}");
        assert_eq!(run.stderr, format!("{message}\n"), "{command:?}");
        assert_eq!(run.stdout, preamble(&s), "{command:?}");
    }

    // An unknown command: the command list, then the error, status 127.
    let run = one_shot(&s, &["frobnicate", "/a"]);
    assert_eq!(run.status, 127);
    assert!(run
        .stderr
        .starts_with("ZooKeeper -server host:port cmd args\n\taddauth scheme auth\n"));
    assert!(run.stderr.contains("\tls [-s] [-w] [-R] path\n"));
    assert!(
        run.stderr
            .ends_with("\twhoami \nCommand not found: frobnicate\n"),
        "{}",
        run.stderr
    );

    // Nothing above changed the tree.
    assert_eq!(
        one_shot(&s, &["ls", "-R", "/a"]).stdout,
        format!("{}/a\n/a/b\n", preamble(&s))
    );
}

#[test]
fn piped_session_runs_until_quit_with_the_last_status() {
    let cluster = CoordCluster::start(1, "");
    let s = server(&cluster);
    let run = piped(
        &s,
        "create /s one\n\
         create /s/a\n\
         \n\
         create /s/b bee\n\
         ls /s\n\
         get /s/b\n\
         set /s/b 'bee two'\n\
         get /s/b\n\
         get /s/a\n\
         create /s/q \"x y\" \n\
         get \"/s/q\n\
         delete /s\n\
         delete /s/a\n\
         ls /s\n\
         stat /nope\n\
         quit\n\
         create /never\n",
    );
    assert_eq!(
        run.stdout,
        interactive_preamble(&s) + "[a, b]\nbee\nbee two\nnull\nx y\n[b, q]\n"
    );
    assert_eq!(
        run.stderr,
        "Created /s\nCreated /s/a\nCreated /s/b\nCreated /s/q\nNode not empty: /s\n\
         Node does not exist: /nope\n"
    );
    // zkCli's `quit` keeps the status of the command before it.
    assert_eq!(run.status, 1);
    // Nothing after `quit` ran.
    assert_eq!(
        one_shot(&s, &["ls", "/"]).stdout,
        format!("{}[s, zookeeper]\n", preamble(&s))
    );

    // End of input ends the session too; a good last command gives status 0.
    let run = piped(&s, "get /nope\nls /s\n");
    assert_eq!(run.status, 0);
    assert_eq!(run.stdout, interactive_preamble(&s) + "[b, q]\n");
    assert_eq!(run.stderr, "Node does not exist: /nope\n");

    // An unknown command is reported and the session goes on; `help` lists the commands.
    let run = piped(&s, "frobnicate\nhelp\nls /s\n");
    assert_eq!(run.status, 0);
    assert_eq!(run.stdout, interactive_preamble(&s) + "[b, q]\n");
    assert!(run.stderr.contains("Command not found: frobnicate\n"));
    assert_eq!(
        run.stderr
            .matches("ZooKeeper -server host:port cmd args")
            .count(),
        2
    );
    assert!(
        !run.stdout.contains("[zk:"),
        "no prompt when stdin is not a terminal"
    );
}

#[test]
fn deprecated_forms_warn_like_zkcli() {
    let cluster = CoordCluster::start(1, "");
    let s = server(&cluster);
    let run = piped(
        &s,
        "create /d x\nls /d 1\nget /d 1\nstat /d 1\ndelete /d 0\nls /\n",
    );
    assert_eq!(
        normalize(&run.stdout),
        normalize(&interactive_preamble(&s))
            + "[]\nx\n"
            + &stat_block(0, 0, 0, false, 1, 0)
            + &normalize(&watcher("NodeDeleted", "/d"))
            + "[zookeeper]\n"
    );
    assert_eq!(
        run.stderr,
        "Created /d\n\
         'ls path [watch]' has been deprecated. Please use 'ls [-w] path' instead.\n\
         'get path [watch]' has been deprecated. Please use 'get [-s] [-w] path' instead.\n\
         'stat path [watch]' has been deprecated. Please use 'stat [-w] path' instead.\n\
         'delete path [version]' has been deprecated. Please use 'delete [-v version] path' instead.\n"
    );
}

#[test]
fn recursive_listing_and_deleteall() {
    let cluster = CoordCluster::start(1, "");
    let s = server(&cluster);
    let run = piped(
        &s,
        "create /r\ncreate /r/b\ncreate /r/a\ncreate /r/a/y\ncreate /r/a/x\ncreate /r/b/z\n\
         ls -R /r\ngetAllChildrenNumber /r\ndeleteall -b 2 /r\nls /\n",
    );
    assert_eq!(run.status, 0, "{run:?}");
    // zkCli's order: a node, all its children, then the subtree of each child.
    assert_eq!(
        run.stdout,
        interactive_preamble(&s) + "/r\n/r/a\n/r/b\n/r/a/x\n/r/a/y\n/r/b/z\n5\n[zookeeper]\n"
    );
    let run = one_shot(&s, &["ls", "-R", "/"]);
    assert_eq!(
        run.stdout,
        preamble(&s) + "/\n/zookeeper\n/zookeeper/config\n/zookeeper/quota\n"
    );
}

#[test]
fn node_kinds_and_ephemerals() {
    let cluster = CoordCluster::start(1, "");
    let s = server(&cluster);
    assert_eq!(one_shot(&s, &["create", "/k"]).status, 0);
    let run = piped(
        &s,
        "create -s /k/seq- a\n\
         create -e /k/eph\n\
         create -es /k/es-\n\
         create -s /k/\n\
         create -c /k/cont\n\
         create /k/eph/child\n\
         stat /k/eph\n\
         getEphemerals /k\n\
         getEphemerals\n\
         ls /k\n",
    );
    assert_eq!(run.status, 0, "{run:?}");
    assert_eq!(
        run.stderr,
        "Created /k/seq-0000000000\nCreated /k/eph\nCreated /k/es-0000000002\n\
         Created /k/0000000003\nCreated /k/cont\n\
         Ephemerals cannot have children: /k/eph/child\n"
    );
    let out = normalize(&run.stdout);
    let rest = out
        .strip_prefix(&(normalize(&interactive_preamble(&s)) + &stat_block(0, 0, 0, true, 0, 0)))
        .unwrap_or_else(|| panic!("{out}"));
    let lines: Vec<&str> = rest.lines().collect();
    assert_eq!(lines.len(), 3, "{rest}");
    // The server decides the order of ephemerals; the set is what matters.
    for listing in &lines[..2] {
        let mut paths: Vec<&str> = listing
            .trim_matches(|c| c == '[' || c == ']')
            .split(", ")
            .collect();
        paths.sort();
        assert_eq!(paths, ["/k/eph", "/k/es-0000000002"], "{listing}");
    }
    assert_eq!(
        lines[2],
        "[0000000003, cont, eph, es-0000000002, seq-0000000000]"
    );
    // The session closed when the shell ended, and its ephemerals went with it.
    assert_eq!(
        one_shot(&s, &["ls", "/k"]).stdout,
        format!("{}[0000000003, cont, seq-0000000000]\n", preamble(&s))
    );
    let run = one_shot(&s, &["create", "-e", "/k/gone"]);
    assert_eq!((run.status, run.stderr.as_str()), (0, "Created /k/gone\n"));
    assert!(!one_shot(&s, &["ls", "/k"]).stdout.contains("gone"));

    // TTL nodes: coord may not offer them; either way the answer is zkCli's.
    let run = one_shot(&s, &["create", "-t", "60000", "/k/ttl", "t"]);
    assert!(
        run.stderr == "Created /k/ttl\n"
            || run.stderr == "KeeperErrorCode = Unimplemented for /k/ttl\n",
        "{run:?}"
    );
}

#[test]
fn acls_and_authentication() {
    let cluster = CoordCluster::start(1, "");
    let s = server(&cluster);
    let run = piped(
        &s,
        "create /open x\n\
         getAcl /open\n\
         setAcl /open world:anyone:zrw,bogus\n\
         getAcl -s /open\n\
         create /ro x world:anyone:r\n\
         set /ro y\n\
         create /ro/c\n\
         setAcl /open bogus\n\
         create /bad x bogus\n\
         addauth digest user:pass\n\
         create /mine x auth:user:pass:cdrwa\n\
         getAcl /mine\n\
         whoami\n",
    );
    assert_eq!(run.status, 0, "{run:?}");
    let out = normalize(&run.stdout);
    let expected_head = normalize(&interactive_preamble(&s))
        + "'world,'anyone\n: cdrwa\n"
        + "'world,'anyone\n: rw\n"
        + &stat_block(0, 0, 1, false, 1, 0)
        + "'digest,'user:smGaoVKd/cQkjm7b88GyorAUz20=\n: cdrwa\n"
        + "Auth scheme: User\n";
    assert!(out.starts_with(&expected_head), "{out}");
    // whoami lists the session's identities: the address, then the digest user.
    let identities: Vec<&str> = out[expected_head.len()..].lines().collect();
    assert_eq!(identities.len(), 2, "{out}");
    assert!(identities[0].starts_with("ip: 127.0.0.1"), "{out}");
    assert!(identities[1].starts_with("digest: user"), "{out}");
    assert_eq!(
        run.stderr,
        "Created /open\n\
         Unknown perm type: z\n\
         bogus does not have the form scheme:id:perm\n\
         Created /ro\n\
         Insufficient permission : /ro\n\
         Insufficient permission : /ro/c\n\
         bogus does not have the form scheme:id:perm\n\
         Acl is not valid : null\n\
         bogus does not have the form scheme:id:perm\n\
         KeeperErrorCode = InvalidACL\n\
         Acl is not valid : null\n\
         Created /mine\n"
    );
    // Without the digest identity the node is closed to a new session.
    let run = one_shot(&s, &["get", "/mine"]);
    assert_eq!(run.stderr, "Insufficient permission : /mine\n");
    let run = piped(&s, "addauth digest user:pass\nget /mine\n");
    assert_eq!(run.stdout, interactive_preamble(&s) + "x\n");

    // setAcl -R goes through the subtree; a node it may not change is reported on stdout and
    // the walk goes on.
    let run = piped(
        &s,
        "create /t\ncreate /t/a\ncreate /t/b\nsetAcl /t/a world:anyone:r\n\
         setAcl -R /t world:anyone:cdrw\ngetAcl /t\ngetAcl /t/b\n",
    );
    assert_eq!(
        run.stdout,
        interactive_preamble(&s)
            + "KeeperErrorCode = NoAuth for /t/a\n"
            + "'world,'anyone\n: cdrw\n'world,'anyone\n: cdrw\n"
    );
}

#[test]
fn watches_fire_once_per_change_in_a_session() {
    let cluster = CoordCluster::start(1, "");
    let s = server(&cluster);
    let run = piped(
        &s,
        "create /w v1\n\
         get -w /w\n\
         stat -w /w\n\
         set /w v2\n\
         ls -w /\n\
         create /w2\n\
         stat -w /w3\n\
         create /w3\n\
         ls -R -w /w3\n\
         delete /w3\n",
    );
    assert_eq!(run.status, 0, "{run:?}");
    assert_eq!(
        normalize(&run.stdout),
        interactive_preamble(&s)
            + "v1\n"
            + &stat_block(0, 0, 0, false, 2, 0)
            + &watcher("NodeDataChanged", "/w")
            + "[w, zookeeper]\n"
            + &watcher("NodeChildrenChanged", "/")
            + &watcher("NodeCreated", "/w3")
            + "/w3\n"
            + &watcher("NodeDeleted", "/w3")
    );
    assert_eq!(
        run.stderr,
        "Created /w\nCreated /w2\nNode does not exist: /w3\nCreated /w3\n"
    );
}

#[test]
fn chroot_in_the_connect_string() {
    let cluster = CoordCluster::start(1, "");
    let s = server(&cluster);
    assert_eq!(one_shot(&s, &["create", "/app"]).status, 0);
    let rooted = format!("{s}/app");
    let run = piped(
        &rooted,
        "create /x 1\ncreate -e /e\nls /\nget /x\ngetEphemerals /\nsync /x\nls -R /\n",
    );
    assert_eq!(run.status, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        interactive_preamble(&rooted) + "[e, x]\n1\n[/app/e]\nSync is OK\n/\n/e\n/x\n"
    );
    assert_eq!(run.stderr, "Created /x\nCreated /e\n");
    assert_eq!(
        one_shot(&s, &["ls", "/app"]).stdout,
        format!("{}[x]\n", preamble(&s))
    );

    // A missing chroot reads as missing nodes, as with zkCli.
    let run = one_shot(&format!("{s}/nowhere"), &["ls", "/"]);
    assert_eq!(
        (run.status, run.stderr.as_str()),
        (1, "Node does not exist: /\n")
    );
}

#[test]
fn sync_and_counts() {
    let cluster = CoordCluster::start(1, "");
    let s = server(&cluster);
    let run = piped(
        &s,
        "create /c\ncreate /c/1\ncreate /c/1/2\nsync /c\nsync /missing-is-fine\n\
         getAllChildrenNumber /c\ngetAllChildrenNumber /c/1/2\ngetEphemerals /c\n",
    );
    assert_eq!(run.status, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        interactive_preamble(&s) + "Sync is OK\nSync is OK\n2\n0\n[]\n"
    );
}

#[test]
fn connection_and_command_line_errors() {
    // Refused: nothing listens on port 1 (a port just released by free_port() could be taken
    // by a coord of a test running alongside).
    let address = "127.0.0.1:1";
    let run = one_shot(address, &["ls", "/"]);
    assert_eq!(run.status, 1, "{run:?}");
    assert_eq!(run.stdout, format!("Connecting to {address}\n"));
    assert_eq!(
        run.stderr,
        format!(
            "Cannot connect to {address}: no ZooKeeper server answered (refused, unreachable or silent)\n"
        )
    );
    // Interactive mode gives up the same way instead of waiting for input.
    let run = piped(address, "ls /\n");
    assert_eq!(run.status, 1);
    assert!(run.stderr.contains(address), "{run:?}");

    // Silent: the port accepts connections but never answers; -timeout bounds the wait.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap().to_string();
    let started = std::time::Instant::now();
    let run = shell(&["-timeout", "1000", &address, "ls", "/"], None);
    assert_eq!(run.status, 1, "{run:?}");
    assert!(
        run.stderr
            .starts_with(&format!("Cannot connect to {address}: ")),
        "{run:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));

    let run = shell(&[], None);
    assert_eq!(run.status, 2);
    assert!(run.stderr.contains("no server given"), "{run:?}");
    assert!(run.stderr.contains("Usage: zookeeper-shell"), "{run:?}");
    let run = shell(&["-server"], None);
    assert_eq!(run.status, 2);
    let run = shell(&["--help"], None);
    assert_eq!(run.status, 0);
    assert!(run.stdout.starts_with("Usage: zookeeper-shell"));
    let run = shell(&["127.0.0.1:1/bad/", "ls", "/"], None);
    assert_eq!(run.status, 1);
    assert!(
        run.stderr
            .starts_with("Cannot connect to 127.0.0.1:1/bad/: invalid connect string"),
        "{run:?}"
    );
}

#[test]
fn prompt_on_a_terminal() {
    // `script` (util-linux) gives the shell a terminal for stdin and stdout.
    let cluster = CoordCluster::start(1, "");
    let s = server(&cluster);
    let run = Command::new("script")
        .args(["-qec", &format!("{SHELL} {s} < /dev/tty"), "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child =
        run.expect("`script` (bsdutils, installed by scripts/setup.sh) gives the shell a terminal");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"ls /\nquit\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    assert!(
        text.contains("Connecting to"),
        "`script` could not give the shell a terminal: {text}"
    );
    // The terminal echoes the typed lines whenever they arrive, so only the prompts and the
    // result are checked, not how they interleave with the echo.
    for expected in [
        format!("[zk: {s}(CONNECTED) 0] "),
        format!("[zk: {s}(CONNECTED) 1] "),
        "[zookeeper]\n".to_string(),
    ] {
        assert!(text.contains(&expected), "{expected:?} in {text}");
    }
    assert!(
        !text.contains("(CONNECTED) 2]"),
        "quit ends the session: {text}"
    );
}

#[test]
fn config_and_reconfig_print_like_zkcli() {
    let mut cluster = CoordCluster::start(3, "reconfigEnabled=true\nskipACL=yes\n");
    let s = cluster.nodes[0].client.to_string();
    let statics: String = cluster.nodes[..3]
        .iter()
        .map(|n| {
            format!(
                "server.{}=127.0.0.1:{}:{}:participant\n",
                n.id, n.peer_port, n.election_port
            )
        })
        .collect();
    // The leader writes the first configuration just after the ensemble forms.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let first = loop {
        let run = one_shot(&s, &["config"]);
        if run.stdout.contains("version=") || std::time::Instant::now() > deadline {
            break run;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let version = first
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("version="))
        .expect("a version line")
        .to_string();
    assert_eq!(
        first.stdout,
        preamble(&s) + &statics + &format!("version={version}\n")
    );

    let four = cluster.add_node("reconfigEnabled=true\n");
    let spec = cluster.nodes[four].server_spec();
    let run = piped(
        &s,
        &format!(
            "reconfig -v 1 -remove 3\nreconfig -add {spec}\nconfig -c\n\
             reconfig -members {spec} -remove 1\nreconfig -remove 1,2,3\nreconfig\n"
        ),
    );
    let new_version = run
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("version="))
        .next()
        .expect("the new configuration")
        .to_string();
    assert_ne!(new_version, version);
    assert_eq!(
        run.stdout,
        interactive_preamble(&s)
            + "Committed new configuration:\n"
            + &statics
            + &spec
            + &format!(
                "\nversion={new_version}\n{new_version} ,,,{}\n",
                cluster.nodes[four].client
            )
    );
    assert_eq!(
        run.stderr,
        "version No is not valid : \n\
         Can't use -file or -members together with -add or -remove (mixing incremental and non-incremental modes is not allowed)\n\
         Arguments are not valid : \n\
         reconfig [-s] [-v version] [[-file path] | [-members serverID=host:port1:port2;port3[,...]*]] | [-add serverId=host:port1:port2;port3[,...]]* [-remove serverId[,...]*]\n"
    );
    assert_eq!(run.status, 1, "{run:?}");

    // A standalone server: an empty configuration, and reconfiguration disabled.
    let single = CoordCluster::start(1, "");
    let s = server(&single);
    let run = piped(&s, "config\nreconfig -remove 1\n");
    assert_eq!(run.stdout, interactive_preamble(&s) + "\n");
    assert_eq!(run.stderr, "KeeperErrorCode = Reconfig is disabled\n");
}
