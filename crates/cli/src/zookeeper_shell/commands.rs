//! The shell's commands, each with zkCli 3.8's options, checks (in zkCli's order, since that
//! decides which message a wrong command gets), output streams and texts.

use std::collections::VecDeque;
use std::time::Duration;

use zookeeper_client::{Acls, CreateMode, EnsembleUpdate, Error as ZkError, OneshotWatcher};

use super::error::{error_code, keeper_message, ShellError};
use super::options::{flag, parse, valued, Opt, Parsed};
use super::{acl, format, path, Flow, Shell};

/// Every command with its zkCli option string (`help` lists them sorted, as zkCli does).
const COMMANDS: [(&str, &str); 18] = [
    ("addauth", "scheme auth"),
    ("config", "[-c] [-w] [-s]"),
    ("create", "[-s] [-e] [-c] [-t ttl] path [data] [acl]"),
    ("delete", "[-v version] path"),
    ("deleteall", "path [-b batch size]"),
    ("get", "[-s] [-w] path"),
    ("getAcl", "[-s] path"),
    ("getAllChildrenNumber", "path"),
    ("getEphemerals", "path"),
    ("help", ""),
    ("ls", "[-s] [-w] [-R] path"),
    ("quit", ""),
    (
        "reconfig",
        "[-s] [-v version] [[-file path] | [-members serverID=host:port1:port2;port3[,...]*]] | [-add serverId=host:port1:port2;port3[,...]]* [-remove serverId[,...]*]",
    ),
    ("set", "[-s] [-v version] path data"),
    ("setAcl", "[-s] [-v version] [-R] path acl"),
    ("stat", "[-w] path"),
    ("sync", "path"),
    ("whoami", ""),
];

/// zkCli's `ttl` limit (`EphemeralType.TTL.maxValue()`): 40 bits of milliseconds.
const MAX_TTL: i64 = 0xFF_FFFF_FFFF;

/// zkCli's `deleteall` batch size.
const DEFAULT_BATCH: i32 = 1000;

/// How long `addauth` waits for a refused session to report its new state.
const AUTH_STATE_WAIT: Duration = Duration::from_secs(2);

/// `cmd options`, the line zkCli prints when a command's words are wrong.
fn usage(name: &str) -> String {
    let options = COMMANDS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, o)| *o);
    format!("{name} {options}")
}

/// The list `help` (and an unknown command) prints on stderr.
pub fn help_text() -> String {
    let mut text = String::from("ZooKeeper -server host:port cmd args\n");
    let mut names: Vec<&(&str, &str)> = COMMANDS.iter().collect();
    names.sort();
    for (name, options) in names {
        text.push_str(&format!("\t{name} {options}\n"));
    }
    text
}

fn parse_words(opts: &[Opt], words: &[String]) -> Result<Parsed, ShellError> {
    parse(opts, words).map_err(|e| ShellError::Usage(e.to_string()))
}

fn check_path(p: &str) -> Result<(), ShellError> {
    path::validate(p, false).map_err(ShellError::MalformedPath)
}

/// `-v`: zkCli lets `Integer.parseInt` fail with a stack trace; here it is a usage error.
fn version(parsed: &Parsed) -> Result<Option<i32>, ShellError> {
    parsed
        .value('v')
        .map(|v| {
            v.parse::<i32>()
                .map_err(|_| ShellError::Usage("-v argument must be an int value".to_string()))
        })
        .transpose()
}

/// The path of `child` under `parent`.
fn child_path(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// zkCli's compatibility rewrite for `ls|get|stat path watch`: the third word becomes `-w`
/// (whatever it was) and the words are parsed again.
fn retain_watch_compatibility(
    shell: &Shell,
    opts: &[Opt],
    words: &mut [String],
    parsed: Parsed,
    message: &str,
) -> Result<Parsed, ShellError> {
    if parsed.args.len() <= 2 {
        return Ok(parsed);
    }
    words[2] = "-w".to_string();
    shell.console.eprintln(message);
    parse_words(opts, words)
}

/// The second positional word (the path, for most commands) or the usage error.
fn arg(parsed: &Parsed, index: usize, name: &str) -> Result<String, ShellError> {
    parsed
        .args
        .get(index)
        .cloned()
        .ok_or_else(|| ShellError::Usage(usage(name)))
}

/// A depth-first walk in zkCli's `ZKUtil.visitSubTreeDFS` order: the root, then all children
/// of a node (sorted) before any grandchild below the first of them. Children of a node are
/// listed only when the walk reaches it, so whatever the caller does to a path (setAcl -R)
/// happens before its subtree is read, as in zkCli.
struct Walk {
    /// Paths found but not yet handed out.
    ready: VecDeque<String>,
    /// Nodes whose children are still to be listed, next on top.
    to_list: Vec<String>,
    watch: bool,
}

impl Walk {
    /// Starts at `root`, which must exist (its data is read, and watched with `-w`).
    async fn start(shell: &mut Shell, root: &str, watch: bool) -> Result<Walk, ShellError> {
        if watch {
            let (_, _, watcher) = shell
                .client
                .get_and_watch_data(root)
                .await
                .map_err(|e| ShellError::keeper(e, root))?;
            shell.watch(watcher);
        } else {
            shell
                .client
                .get_data(root)
                .await
                .map_err(|e| ShellError::keeper(e, root))?;
        }
        Ok(Walk {
            ready: VecDeque::from([root.to_string()]),
            to_list: vec![root.to_string()],
            watch,
        })
    }

    async fn next(&mut self, shell: &mut Shell) -> Result<Option<String>, ShellError> {
        loop {
            if let Some(path) = self.ready.pop_front() {
                return Ok(Some(path));
            }
            let Some(node) = self.to_list.pop() else {
                return Ok(None);
            };
            let listed = if self.watch {
                shell
                    .client
                    .list_and_watch_children(&node)
                    .await
                    .map(|(children, watcher)| {
                        shell.watch(watcher);
                        children
                    })
            } else {
                shell.client.list_children(&node).await
            };
            let mut children = match listed {
                Ok(children) => children,
                // Deleted since its parent was listed: zkCli skips it too.
                Err(ZkError::NoNode) => continue,
                Err(e) => return Err(ShellError::keeper(e, &node)),
            };
            format::java_sort(&mut children);
            let paths: Vec<String> = children.iter().map(|c| child_path(&node, c)).collect();
            self.to_list.extend(paths.iter().rev().cloned());
            self.ready.extend(paths);
        }
    }
}

impl Shell {
    /// Runs one command given as words (the command name first).
    pub(super) async fn execute(&mut self, words: Vec<String>) -> Result<Flow, ShellError> {
        let Some(name) = words.first().cloned() else {
            return Ok(Flow::Continue);
        };
        match name.as_str() {
            "quit" => return Ok(Flow::Quit),
            "help" => {
                self.print_help();
                return Ok(Flow::Continue);
            }
            known if COMMANDS.iter().any(|(n, _)| *n == known) => {}
            _ => {
                self.print_help();
                return Err(ShellError::CommandNotFound(name));
            }
        }
        if self.client.state().is_terminated() {
            return Err(ShellError::NotConnected);
        }
        match name.as_str() {
            "ls" => self.ls(words).await,
            "get" => self.get(words).await,
            "stat" => self.stat(words).await,
            "create" => self.create(words).await,
            "set" => self.set(words).await,
            "delete" => self.delete(words).await,
            "deleteall" => self.delete_all(words).await,
            "getAcl" => self.get_acl(words).await,
            "setAcl" => self.set_acl(words).await,
            "addauth" => self.add_auth(words).await,
            "sync" => self.sync(words).await,
            "getEphemerals" => self.get_ephemerals(words).await,
            "getAllChildrenNumber" => self.get_all_children_number(words).await,
            "whoami" => self.who_am_i().await,
            "config" => self.config(words).await,
            "reconfig" => self.reconfig(words).await,
            _ => unreachable!("every command in COMMANDS is dispatched"),
        }?;
        Ok(Flow::Continue)
    }

    /// The command list, on stderr as zkCli prints it.
    fn print_help(&self) {
        self.console.eprintln(help_text().trim_end_matches('\n'));
    }

    /// Remembers a watch set with `-w`; its event is printed when it fires.
    pub(super) fn watch(&mut self, watcher: OneshotWatcher) {
        self.watches
            .spawn(async move { format::node_event(&watcher.changed().await) });
    }

    async fn ls(&mut self, mut words: Vec<String>) -> Result<(), ShellError> {
        const OPTS: [Opt; 3] = [flag('s'), flag('w'), flag('R')];
        let parsed = parse_words(&OPTS, &words)?;
        let parsed = retain_watch_compatibility(
            self,
            &OPTS,
            &mut words,
            parsed,
            "'ls path [watch]' has been deprecated. Please use 'ls [-w] path' instead.",
        )?;
        let path = arg(&parsed, 1, "ls")?;
        let watch = parsed.has('w');
        check_path(&path)?;
        if parsed.has('R') {
            let mut walk = Walk::start(self, &path, watch).await?;
            while let Some(p) = walk.next(self).await? {
                self.console.println(&p);
            }
            return Ok(());
        }
        let client = &self.client;
        let keeper = |e| ShellError::keeper(e, &path);
        let (mut children, stat) = match (parsed.has('s'), watch) {
            (false, false) => (client.list_children(&path).await.map_err(keeper)?, None),
            (true, false) => {
                let (children, stat) = client.get_children(&path).await.map_err(keeper)?;
                (children, Some(stat))
            }
            (false, true) => {
                let (children, watcher) = client
                    .list_and_watch_children(&path)
                    .await
                    .map_err(keeper)?;
                self.watch(watcher);
                (children, None)
            }
            (true, true) => {
                let (children, stat, watcher) =
                    client.get_and_watch_children(&path).await.map_err(keeper)?;
                self.watch(watcher);
                (children, Some(stat))
            }
        };
        format::java_sort(&mut children);
        self.console.println(&format::java_list(&children));
        if let Some(stat) = stat {
            self.console.print(&format::stat_block(&stat));
        }
        Ok(())
    }

    async fn get(&mut self, mut words: Vec<String>) -> Result<(), ShellError> {
        const OPTS: [Opt; 2] = [flag('s'), flag('w')];
        let parsed = parse_words(&OPTS, &words)?;
        arg(&parsed, 1, "get")?;
        let parsed = retain_watch_compatibility(
            self,
            &OPTS,
            &mut words,
            parsed,
            "'get path [watch]' has been deprecated. Please use 'get [-s] [-w] path' instead.",
        )?;
        let path = arg(&parsed, 1, "get")?;
        check_path(&path)?;
        let (data, stat) = if parsed.has('w') {
            let (data, stat, watcher) = self
                .client
                .get_and_watch_data(&path)
                .await
                .map_err(|e| ShellError::keeper(e, &path))?;
            self.watch(watcher);
            (data, stat)
        } else {
            self.client
                .get_data(&path)
                .await
                .map_err(|e| ShellError::keeper(e, &path))?
        };
        self.console.println(&format::data_text(&data));
        if parsed.has('s') {
            self.console.print(&format::stat_block(&stat));
        }
        Ok(())
    }

    async fn stat(&mut self, mut words: Vec<String>) -> Result<(), ShellError> {
        const OPTS: [Opt; 1] = [flag('w')];
        let parsed = parse_words(&OPTS, &words)?;
        arg(&parsed, 1, "stat")?;
        let parsed = retain_watch_compatibility(
            self,
            &OPTS,
            &mut words,
            parsed,
            "'stat path [watch]' has been deprecated. Please use 'stat [-w] path' instead.",
        )?;
        let path = arg(&parsed, 1, "stat")?;
        check_path(&path)?;
        let stat = if parsed.has('w') {
            let (stat, watcher) = self
                .client
                .check_and_watch_stat(&path)
                .await
                .map_err(|e| ShellError::keeper(e, &path))?;
            // Set even when the node is missing: it then reports the creation.
            self.watch(watcher);
            stat
        } else {
            self.client
                .check_stat(&path)
                .await
                .map_err(|e| ShellError::keeper(e, &path))?
        };
        let stat = stat.ok_or_else(|| ShellError::keeper(ZkError::NoNode, &path))?;
        self.console.print(&format::stat_block(&stat));
        Ok(())
    }

    async fn create(&mut self, words: Vec<String>) -> Result<(), ShellError> {
        const OPTS: [Opt; 4] = [flag('e'), flag('s'), flag('c'), valued('t')];
        let parsed = parse_words(&OPTS, &words)?;
        let path = arg(&parsed, 1, "create")?;
        let (e, s, c, t) = (
            parsed.has('e'),
            parsed.has('s'),
            parsed.has('c'),
            parsed.has('t'),
        );
        let malformed = |m: &str| Err(ShellError::Usage(m.to_string()));
        if c && (e || s) {
            return malformed(
                "-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential.",
            );
        }
        let ttl = match parsed.value('t') {
            Some(v) => match v.parse::<i64>() {
                Ok(ttl) => Some(ttl),
                Err(_) => return malformed("-t argument must be a long value"),
            },
            None => None,
        };
        if t && e {
            return malformed("TTLs cannot be used with Ephemeral znodes");
        }
        if t && c {
            return malformed("TTLs cannot be used with Container znodes");
        }
        if let Some(ttl) = ttl {
            if ttl <= 0 || ttl > MAX_TTL {
                return malformed(&format!(
                    "ttl must be positive and cannot be larger than: {MAX_TTL}"
                ));
            }
        }
        let mode = match (e, s, c) {
            (true, true, _) => CreateMode::EphemeralSequential,
            (true, false, _) => CreateMode::Ephemeral,
            (false, true, _) => CreateMode::PersistentSequential,
            (false, false, true) => CreateMode::Container,
            (false, false, false) => CreateMode::Persistent,
        };
        let data = parsed.args.get(2).map(String::as_bytes).unwrap_or_default();
        let acl = match parsed.args.get(3) {
            Some(text) => {
                let parsed_acl = acl::parse(text);
                for warning in &parsed_acl.warnings {
                    self.console.eprintln(warning);
                }
                Some(parsed_acl.acl)
            }
            None => None,
        };
        path::validate(&path, s).map_err(ShellError::MalformedPath)?;
        let acls = match &acl {
            Some(list) if list.is_empty() => {
                // Refused by the Java client before sending, hence no path in the message.
                self.console
                    .eprintln(&keeper_message(&ZkError::InvalidAcl, None));
                return Err(ShellError::Keeper {
                    source: ZkError::InvalidAcl,
                    path: None,
                });
            }
            Some(list) => Acls::new(list),
            None => Acls::anyone_all(),
        };
        let mut options = mode.with_acls(acls);
        if let Some(ttl) = ttl {
            options = options.with_ttl(Duration::from_millis(ttl as u64));
        }
        // The library refuses to create "/"; zkCli sends it (under a chroot that creates the
        // chroot node) and shows the server's answer.
        let created = if path == "/" && !s {
            let root = self.client.path().to_string();
            if root == "/" {
                Err(ZkError::NodeExists)
            } else {
                let unrooted = self
                    .client
                    .clone()
                    .chroot("/")
                    .expect("\"/\" is a valid chroot");
                unrooted
                    .create(&root, data, &options)
                    .await
                    .map(|_| "/".to_string())
            }
        } else {
            self.client
                .create(&path, data, &options)
                .await
                .map(|(_, sequence)| {
                    if s {
                        format!("{path}{sequence}")
                    } else {
                        path.clone()
                    }
                })
        };
        match created {
            Ok(created) => {
                self.console.eprintln(&format!("Created {created}"));
                Ok(())
            }
            Err(ZkError::InvalidAcl) => {
                self.console
                    .eprintln(&keeper_message(&ZkError::InvalidAcl, Some(&path)));
                Err(ShellError::keeper(ZkError::InvalidAcl, &path))
            }
            Err(e) => Err(ShellError::keeper(e, &path)),
        }
    }

    async fn set(&mut self, words: Vec<String>) -> Result<(), ShellError> {
        const OPTS: [Opt; 2] = [flag('s'), valued('v')];
        let parsed = parse_words(&OPTS, &words)?;
        if parsed.args.len() < 3 {
            return Err(ShellError::Usage(usage("set")));
        }
        let (path, data) = (&parsed.args[1], &parsed.args[2]);
        let version = version(&parsed)?;
        check_path(path)?;
        let stat = self
            .client
            .set_data(path, data.as_bytes(), version)
            .await
            .map_err(|e| ShellError::keeper(e, path))?;
        if parsed.has('s') {
            self.console.print(&format::stat_block(&stat));
        }
        Ok(())
    }

    async fn delete(&mut self, words: Vec<String>) -> Result<(), ShellError> {
        const OPTS: [Opt; 1] = [valued('v')];
        let parsed = parse_words(&OPTS, &words)?;
        let path = arg(&parsed, 1, "delete")?;
        if parsed.args.len() > 2 {
            // zkCli warns but, unlike ls/get/stat, ignores the old positional version.
            self.console.eprintln(
                "'delete path [version]' has been deprecated. Please use 'delete [-v version] path' instead.",
            );
        }
        let version = version(&parsed)?;
        check_path(&path)?;
        self.client
            .delete(&path, version)
            .await
            .map_err(|e| ShellError::keeper(e, &path))
    }

    async fn delete_all(&mut self, words: Vec<String>) -> Result<(), ShellError> {
        const OPTS: [Opt; 1] = [valued('b')];
        let parsed = parse_words(&OPTS, &words)?;
        let path = arg(&parsed, 1, "deleteall")?;
        let batch = match parsed.value('b') {
            Some(v) => v
                .parse::<i32>()
                .map_err(|_| ShellError::Usage("-b argument must be an int value".to_string()))?,
            None => DEFAULT_BATCH,
        };
        check_path(&path)?;
        // zkCli's ZKUtil.listSubTreeBFS, then deletes leaves first in multi batches.
        let mut tree = vec![path.clone()];
        let mut next = 0;
        while next < tree.len() {
            let node = tree[next].clone();
            next += 1;
            let children = self
                .client
                .list_children(&node)
                .await
                .map_err(|e| ShellError::keeper(e, &node))?;
            tree.extend(children.iter().map(|c| child_path(&node, c)));
        }
        let batch = usize::try_from(batch)
            .ok()
            .filter(|b| *b > 0)
            .unwrap_or(tree.len());
        let mut ok = true;
        for chunk in tree.iter().rev().collect::<Vec<_>>().chunks(batch) {
            let mut writer = self.client.new_multi_writer();
            let added = chunk.iter().try_for_each(|p| writer.add_delete(p, None));
            if added.is_err() || writer.commit().await.is_err() {
                ok = false;
                break;
            }
        }
        if ok {
            Ok(())
        } else {
            Err(ShellError::Failed {
                message: "Failed to delete some node(s) in the subtree!".to_string(),
                on_stdout: false,
            })
        }
    }

    async fn get_acl(&mut self, words: Vec<String>) -> Result<(), ShellError> {
        const OPTS: [Opt; 1] = [flag('s')];
        let parsed = parse_words(&OPTS, &words)?;
        let path = arg(&parsed, 1, "getAcl")?;
        check_path(&path)?;
        let (acl, stat) = self
            .client
            .get_acl(&path)
            .await
            .map_err(|e| ShellError::keeper(e, &path))?;
        for entry in &acl {
            self.console.println(&acl::format_entry(entry));
        }
        if parsed.has('s') {
            self.console.print(&format::stat_block(&stat));
        }
        Ok(())
    }

    async fn set_acl(&mut self, words: Vec<String>) -> Result<(), ShellError> {
        const OPTS: [Opt; 3] = [flag('s'), valued('v'), flag('R')];
        let parsed = parse_words(&OPTS, &words)?;
        if parsed.args.len() < 3 {
            return Err(ShellError::Usage(usage("setAcl")));
        }
        let path = parsed.args[1].clone();
        let parsed_acl = acl::parse(&parsed.args[2]);
        for warning in &parsed_acl.warnings {
            self.console.eprintln(warning);
        }
        let acl = parsed_acl.acl;
        let version = version(&parsed)?;
        check_path(&path)?;
        if parsed.has('R') {
            let mut walk = Walk::start(self, &path, false).await?;
            while let Some(p) = walk.next(self).await? {
                // zkCli reports a node it cannot change and goes on with the rest.
                let result = if acl.is_empty() {
                    Err((ZkError::InvalidAcl, None))
                } else {
                    self.client
                        .set_acl(&p, &acl, version)
                        .await
                        .map_err(|e| (e, Some(p.as_str())))
                };
                if let Err((e, at)) = result {
                    self.console.println(&keeper_message(&e, at));
                }
            }
            return Ok(());
        }
        if acl.is_empty() {
            return Err(ShellError::Keeper {
                source: ZkError::InvalidAcl,
                path: None,
            });
        }
        let stat = self
            .client
            .set_acl(&path, &acl, version)
            .await
            .map_err(|e| ShellError::keeper(e, &path))?;
        if parsed.has('s') {
            self.console.print(&format::stat_block(&stat));
        }
        Ok(())
    }

    async fn add_auth(&mut self, words: Vec<String>) -> Result<(), ShellError> {
        let parsed = parse_words(&[], &words)?;
        let scheme = arg(&parsed, 1, "addauth")?;
        let auth = parsed.args.get(2).map(String::as_bytes).unwrap_or_default();
        // The library keeps an authentication pending across reconnections; a server that
        // drops the connection without a proper answer would make the shell wait forever.
        let limit = self.client.session_timeout();
        let answer = tokio::time::timeout(limit, self.client.auth(&scheme, auth)).await;
        let Ok(answer) = answer else {
            return Err(ShellError::Failed {
                message: format!(
                    "No answer to addauth within the session timeout ({} ms)",
                    limit.as_millis()
                ),
                on_stdout: false,
            });
        };
        match answer {
            Ok(()) => Ok(()),
            Err(ZkError::AuthFailed) => {
                // The server closes the session; zkCli shows that as a watcher event, which the
                // loop prints once the state has changed.
                let mut states = self.client.state_watcher();
                let mut state = self.client.state();
                let _ = tokio::time::timeout(AUTH_STATE_WAIT, async {
                    while !state.is_terminated() {
                        state = states.changed().await;
                    }
                })
                .await;
                Err(ShellError::Reported)
            }
            Err(e) => Err(ShellError::Keeper {
                source: e,
                path: None,
            }),
        }
    }

    async fn sync(&mut self, words: Vec<String>) -> Result<(), ShellError> {
        let parsed = parse_words(&[], &words)?;
        let path = arg(&parsed, 1, "sync")?;
        check_path(&path)?;
        match self.client.sync(&path).await {
            Ok(()) => {
                self.console.println("Sync is OK");
                Ok(())
            }
            Err(e) => Err(ShellError::Failed {
                message: format!("Sync has failed. rc={}", error_code(&e)),
                on_stdout: true,
            }),
        }
    }

    async fn get_ephemerals(&mut self, words: Vec<String>) -> Result<(), ShellError> {
        let parsed = parse_words(&[], &words)?;
        // Without a path, zkCli lists every ephemeral of the session.
        let path = parsed.args.get(1).cloned().unwrap_or_else(|| "/".into());
        check_path(&path)?;
        let mut ephemerals = self
            .client
            .list_ephemerals(&path)
            .await
            .map_err(|e| ShellError::keeper(e, &path))?;
        // The library strips the chroot from these paths; the Java client does not, and zkCli
        // shows them from the server's root.
        let chroot = self.client.path();
        if chroot != "/" {
            for p in &mut ephemerals {
                *p = if p == "/" {
                    chroot.to_string()
                } else {
                    format!("{chroot}{p}")
                };
            }
        }
        self.console.println(&format::java_list(&ephemerals));
        Ok(())
    }

    async fn get_all_children_number(&mut self, words: Vec<String>) -> Result<(), ShellError> {
        let parsed = parse_words(&[], &words)?;
        let path = arg(&parsed, 1, "getAllChildrenNumber")?;
        check_path(&path)?;
        let n = self
            .client
            .count_descendants_number(&path)
            .await
            .map_err(|e| ShellError::keeper(e, &path))?;
        self.console.println(&n.to_string());
        Ok(())
    }

    async fn who_am_i(&mut self) -> Result<(), ShellError> {
        let users = self
            .client
            .list_auth_users()
            .await
            .map_err(|e| ShellError::Keeper {
                source: e,
                path: None,
            })?;
        self.console.println("Auth scheme: User");
        for user in &users {
            self.console
                .println(&format!("{}: {}", user.scheme(), user.user()));
        }
        Ok(())
    }

    /// `config [-c] [-w] [-s]`: getData on `/zookeeper/config`; `-c` prints only the version
    /// and the members' client addresses (ZooKeeper's `ConfigUtils.getClientConfigStr`).
    async fn config(&mut self, words: Vec<String>) -> Result<(), ShellError> {
        const OPTS: [Opt; 3] = [flag('c'), flag('w'), flag('s')];
        let parsed = parse_words(&OPTS, &words)?;
        let (data, stat) = if parsed.has('w') {
            let (data, stat, watcher) = self
                .client
                .get_and_watch_config()
                .await
                .map_err(|e| ShellError::keeper(e, "/zookeeper/config"))?;
            self.watch(watcher);
            (data, stat)
        } else {
            self.client
                .get_config()
                .await
                .map_err(|e| ShellError::keeper(e, "/zookeeper/config"))?
        };
        let text = String::from_utf8_lossy(&data);
        if parsed.has('c') {
            self.console.println(&client_config(&text));
        } else {
            self.console.println(&text);
        }
        if parsed.has('s') {
            self.console.print(&format::stat_block(&stat));
        }
        Ok(())
    }

    /// `reconfig`: zkCli's options and checks; the new configuration is printed after
    /// `Committed new configuration:`.
    async fn reconfig(&mut self, words: Vec<String>) -> Result<(), ShellError> {
        let args = ReconfigWords::parse(&words)?;
        let result = match (&args.members, &args.joining, &args.leaving) {
            (Some(members), _, _) => {
                let update = EnsembleUpdate::New {
                    ensemble: members.split(','),
                };
                self.client.update_ensemble(update, args.version).await
            }
            (None, joining, leaving) => {
                let update = EnsembleUpdate::Incremental {
                    joinings: joining.as_deref().unwrap_or("").split(','),
                    leavings: leaving.as_deref().unwrap_or("").split(','),
                };
                self.client.update_ensemble(update, args.version).await
            }
        };
        match result {
            Ok((data, stat)) => {
                self.console.println(&format!(
                    "Committed new configuration:\n{}",
                    String::from_utf8_lossy(&data)
                ));
                if args.stat {
                    self.console.print(&format::stat_block(&stat));
                }
                Ok(())
            }
            Err(e) => Err(reconfig_error(e)),
        }
    }
}

/// The words of a `reconfig` command, checked in zkCli's order with its messages.
#[derive(Debug, Default, PartialEq, Eq)]
struct ReconfigWords {
    stat: bool,
    version: Option<i64>,
    joining: Option<String>,
    leaving: Option<String>,
    members: Option<String>,
}

impl ReconfigWords {
    fn parse(words: &[String]) -> Result<ReconfigWords, ShellError> {
        if words.len() < 2 {
            return Err(ShellError::Usage(usage("reconfig")));
        }
        let mut out = ReconfigWords::default();
        let mut file: Option<String> = None;
        let mut rest = words[1..].iter();
        while let Some(word) = rest.next() {
            let mut value = |name: &str| {
                rest.next().cloned().ok_or_else(|| {
                    ShellError::Usage(format!("Missing argument for option: {name}"))
                })
            };
            match word.as_str() {
                "-s" => out.stat = true,
                "-v" => {
                    let v = value("v")?;
                    // zkCli reads the version as hexadecimal, as `config` prints it.
                    out.version = Some(i64::from_str_radix(&v, 16).map_err(|_| {
                        ShellError::Usage(format!("-v argument must be a hexadecimal version: {v}"))
                    })?);
                }
                "-add" => out.joining = Some(value("add")?.to_lowercase()),
                "-remove" => out.leaving = Some(value("remove")?.to_lowercase()),
                "-members" => out.members = Some(value("members")?.to_lowercase()),
                "-file" => file = Some(value("file")?),
                other if other.starts_with('-') => {
                    return Err(ShellError::Usage(format!("Unrecognized option: {other}")))
                }
                _ => {}
            }
        }
        let incremental = out.joining.is_some() || out.leaving.is_some();
        if (file.is_some() || out.members.is_some()) && incremental {
            return Err(ShellError::Usage("Can't use -file or -members together with -add or -remove (mixing incremental and non-incremental modes is not allowed)".into()));
        }
        if file.is_some() && out.members.is_some() {
            return Err(ShellError::Usage(
                "Can't use -file and -members together (conflicting non-incremental modes)".into(),
            ));
        }
        if let Some(path) = file {
            let text = std::fs::read_to_string(&path).map_err(|e| ShellError::Failed {
                message: format!("{path}: {e}"),
                on_stdout: false,
            })?;
            let lines: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with("server."))
                .map(str::to_string)
                .collect();
            out.members = Some(lines.join(","));
        }
        if out.joining.is_none() && out.leaving.is_none() && out.members.is_none() {
            return Err(ShellError::Usage(
                "Arguments must contain one of -members, -file, -add, -remove".into(),
            ));
        }
        Ok(out)
    }
}

/// zkCli's messages for a failed `reconfig` (its `CliWrapperException`, with no path).
fn reconfig_error(e: ZkError) -> ShellError {
    let message = match error_code(&e) {
        -13 => "No quorum of new config is connected and up-to-date with the leader of last committed config - try invoking reconfiguration after new servers are connected and synced".to_string(),
        -14 => "Another reconfiguration is in progress -- concurrent reconfigs not supported (yet)".to_string(),
        _ => return ShellError::keeper(e, ""),
    };
    ShellError::Failed {
        message,
        on_stdout: false,
    }
}

/// `config -c`: the version, a space, and one entry per member, its client address or nothing,
/// joined by commas (ZooKeeper's `ConfigUtils.getClientConfigStr`; ZooKeeper lists the members
/// in its properties table's order, here they come by id).
fn client_config(text: &str) -> String {
    let mut version = "";
    let mut clients = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("version=") {
            version = v;
        } else if line.starts_with("server.") {
            let client = line.split_once(';').map_or("", |(_, c)| c.trim());
            clients.push(if client.is_empty() || client.contains(':') {
                client.to_string()
            } else {
                format!("0.0.0.0:{client}")
            });
        }
    }
    format!("{version} {}", clients.join(","))
}

#[cfg(test)]
mod reconfig_tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn reconfig_words_as_zkcli_reads_them() {
        let w = ReconfigWords::parse(&words(
            "reconfig -s -v 100000002 -add server.4=H:1:2;3 -remove 3",
        ))
        .unwrap();
        assert_eq!(
            w,
            ReconfigWords {
                stat: true,
                version: Some(0x1_0000_0002),
                joining: Some("server.4=h:1:2;3".into()),
                leaving: Some("3".into()),
                members: None,
            }
        );
        let err = |l: &str| ReconfigWords::parse(&words(l)).unwrap_err().to_string();
        assert!(err("reconfig").starts_with("reconfig [-s]"));
        assert!(err("reconfig -s").contains("must contain one of"));
        assert!(err("reconfig -members server.1=h:1:2 -remove 2").contains("mixing incremental"));
        assert!(err("reconfig -v zz -remove 2").contains("hexadecimal"));
        assert!(err("reconfig -remove").contains("Missing argument"));
    }

    #[test]
    fn client_config_lists_client_addresses() {
        let text = "server.1=h:1:2:participant;127.0.0.1:2181\nserver.2=h:3:4:participant\nversion=100000002";
        assert_eq!(client_config(text), "100000002 127.0.0.1:2181,");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_lines_are_zkclis() {
        assert_eq!(usage("ls"), "ls [-s] [-w] [-R] path");
        assert_eq!(usage("set"), "set [-s] [-v version] path data");
        assert_eq!(usage("whoami"), "whoami ");
    }

    #[test]
    fn help_lists_commands_sorted() {
        let help = help_text();
        let mut lines = help.lines();
        assert_eq!(lines.next(), Some("ZooKeeper -server host:port cmd args"));
        let names: Vec<&str> = lines
            .map(|l| l.trim_start_matches('\t').split(' ').next().unwrap())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(names.len(), COMMANDS.len());
    }

    #[test]
    fn child_paths() {
        assert_eq!(child_path("/", "a"), "/a");
        assert_eq!(child_path("/a", "b"), "/a/b");
    }
}
