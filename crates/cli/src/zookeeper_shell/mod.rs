//! `zookeeper-shell`: the coordinator's admin shell, in the style of ZooKeeper's `zkCli.sh` and
//! Kafka's `bin/zookeeper-shell.sh`.
//!
//! ```text
//! zookeeper-shell [-server] HOST:PORT[,HOST:PORT...][/chroot] [-timeout ms] [-r] [COMMAND ARGS...]
//! ```
//!
//! With a command it runs that command once and exits: 0 on success, the zkCli status otherwise
//! (1, or 127 for an unknown command) with the error on stderr. Without one it reads commands
//! from standard input, one per line, until `quit` or end of input, and exits with the status of
//! the last command, as zkCli does; a prompt `[zk: HOST:PORT(CONNECTED) N] ` is shown only when
//! standard input is a terminal.
//!
//! Output is zkCli 3.8's, byte for byte where scripts read it: the `Connecting to ...` and
//! `WATCHER::` preamble on stdout, `Created /path` on stderr, `[a, b]` lists, stat blocks with
//! Java dates, and the same error messages. The modules split the work: [`invocation`] reads the
//! command line, `line` splits interactive lines, `options` parses a command's options,
//! `commands` runs them against the session, and the rest formats.

mod acl;
mod commands;
mod console;
mod date;
mod error;
mod format;
pub mod invocation;
mod line;
mod options;
mod path;

use std::io::{BufRead, IsTerminal};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use zookeeper_client::{Client, SessionState, StateWatcher};

pub use self::console::Console;
pub use self::date::java_date;
use self::error::ShellError;
pub use self::invocation::{
    parse as parse_invocation, Invocation, InvocationError, Options, USAGE,
};

/// How long `quit` and the end of a one-shot command wait for the server to confirm the session
/// is closed (which removes its ephemeral nodes at once, as zkCli's `quit` does).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// Interactive input: lines of standard input, read on a thread of their own so that the
/// session keeps its heartbeat while the shell waits for the user.
#[derive(Debug)]
pub struct Input {
    lines: Option<mpsc::Receiver<String>>,
    prompt: bool,
}

impl Input {
    /// Standard input; the prompt is shown only when it is a terminal.
    pub fn stdin() -> Self {
        Input {
            lines: None,
            prompt: std::io::stdin().is_terminal(),
        }
    }

    /// The next line without its line terminator; `None` at end of input.
    async fn next_line(&mut self) -> Option<String> {
        let lines = self.lines.get_or_insert_with(spawn_stdin_reader);
        lines.recv().await
    }
}

/// Starts the thread that feeds standard input to the shell. The channel holds one line so the
/// reader stays at most one line ahead. The thread is left blocked in `read` when the shell
/// ends; the process exit takes it down.
fn spawn_stdin_reader() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(1);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match stdin.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if buf.last() == Some(&b'\n') {
                buf.pop();
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
            }
            let line = String::from_utf8_lossy(&buf).into_owned();
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// What the loop does after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

/// A connected shell: the session and the watches it has set.
struct Shell {
    client: Client,
    console: Console,
    /// Watches set with `-w`; each task ends with the text to print when it fires.
    watches: JoinSet<Option<String>>,
    /// The session state last reported to the user.
    reported_state: SessionState,
    states: StateWatcher,
}

impl std::fmt::Debug for Shell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shell")
            .field("client", &self.client)
            .field("reported_state", &self.reported_state)
            .finish_non_exhaustive()
    }
}

/// Runs the shell as `options` ask: connects, then runs the one-shot command or reads `input`.
/// Returns the process exit status.
pub async fn run(options: Options, console: Console, mut input: Input) -> i32 {
    console.println(&format!("Connecting to {}", options.server));
    let client = match connect(&options).await {
        Ok(client) => client,
        Err(message) => {
            console.eprintln(&message);
            return 1;
        }
    };
    let interactive = options.command.is_empty();
    if interactive {
        console.println("Welcome to ZooKeeper!");
        console.println("JLine support is disabled");
    }
    let mut shell = Shell::new(client, console);
    let status = if interactive {
        shell.interact(&options.server, &mut input).await
    } else {
        shell.run_command(options.command).await.0
    };
    shell.close().await;
    status
}

/// Opens the session; the error text names the address.
async fn connect(options: &Options) -> Result<Client, String> {
    let connector = Client::connector()
        .with_session_timeout(options.session_timeout)
        .with_readonly(options.readonly)
        // Report a refused or unreachable server at once instead of cycling through the list
        // until the session timeout.
        .with_fail_eagerly();
    let server = &options.server;
    match tokio::time::timeout(options.session_timeout, connector.connect(server)).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(zookeeper_client::Error::NoHosts)) => Err(format!(
            "Cannot connect to {server}: no ZooKeeper server answered (refused, unreachable or silent)"
        )),
        Ok(Err(zookeeper_client::Error::BadArguments(why))) => Err(format!(
            "Cannot connect to {server}: invalid connect string ({why})"
        )),
        Ok(Err(zookeeper_client::Error::Timeout)) | Err(_) => Err(format!(
            "Cannot connect to {server}: no session established within {} ms",
            options.session_timeout.as_millis()
        )),
        Ok(Err(e)) => Err(format!("Cannot connect to {server}: {e}")),
    }
}

impl Shell {
    fn new(client: Client, console: Console) -> Self {
        let states = client.state_watcher();
        let shell = Shell {
            reported_state: client.state(),
            client,
            console,
            watches: JoinSet::new(),
            states,
        };
        // zkCli's default watcher reports the connection the moment it is made.
        shell
            .console
            .print(&format::state_event(shell.reported_state));
        shell
    }

    /// Runs one command and reports its failure; returns the exit status and what to do next.
    async fn run_command(&mut self, words: Vec<String>) -> (i32, Flow) {
        let result = self.execute(words).await;
        let outcome = match result {
            Ok(flow) => (0, flow),
            Err(e) => {
                match &e {
                    ShellError::Reported => {}
                    e if e.on_stdout() => self.console.println(&e.to_string()),
                    e => self.console.eprintln(&e.to_string()),
                }
                (e.exit_code(), Flow::Continue)
            }
        };
        // Let watch tasks woken by this command's own change run before anything else prints.
        tokio::task::yield_now().await;
        self.report_events();
        outcome
    }

    /// The interactive loop.
    async fn interact(&mut self, server: &str, input: &mut Input) -> i32 {
        let mut status = 0;
        let mut count = 0u64;
        loop {
            self.report_events();
            if input.prompt {
                let state = format::prompt_state(self.client.state());
                self.console
                    .print(&format!("[zk: {server}({state}) {count}] "));
            }
            let line = tokio::select! {
                line = input.next_line() => line,
                Some(fired) = self.watches.join_next(), if !self.watches.is_empty() => {
                    // Other watches fired by the same change complete in the same turn.
                    tokio::task::yield_now().await;
                    self.report_watch_events(fired.ok().flatten());
                    continue;
                }
                state = self.states.changed() => {
                    self.report_state(state);
                    continue;
                }
            };
            let Some(line) = line else {
                break;
            };
            // zkCli runs a blank line as the command " " and fails it; the shell skips it.
            if line::is_blank(&line) {
                continue;
            }
            let words = line::split(&line);
            count += 1;
            let (code, flow) = self.run_command(words).await;
            if flow == Flow::Quit {
                // zkCli's `quit` keeps the status of the command before it.
                break;
            }
            status = code;
        }
        status
    }

    /// Prints watch events and session state changes that happened since the last call.
    fn report_events(&mut self) {
        self.report_watch_events(None);
        let state = self.states.state();
        self.report_state(state);
    }

    /// Prints the watch events that have fired (`first` already taken from the set), each once.
    ///
    /// zkCli registers all watches with one watcher object, and the Java client fires a watcher
    /// once per change however many watches (`get -w` and `stat -w` on one path) it set. Here
    /// every watch is its own, so the copies one change fires together are folded into one.
    fn report_watch_events(&mut self, first: Option<String>) {
        let mut texts: Vec<String> = first.into_iter().collect();
        while let Some(fired) = self.watches.try_join_next() {
            if let Ok(Some(text)) = fired {
                if !texts.contains(&text) {
                    texts.push(text);
                }
            }
        }
        for text in texts {
            self.console.print(&text);
        }
    }

    fn report_state(&mut self, state: SessionState) {
        // Closing is the shell's own doing; zkCli does not report it either.
        if state != self.reported_state && state != SessionState::Closed {
            self.console.print(&format::state_event(state));
        }
        self.reported_state = state;
    }

    /// Closes the session and waits (briefly) until the server has confirmed it.
    async fn close(self) {
        let Shell {
            client,
            mut states,
            watches,
            ..
        } = self;
        drop(watches);
        let mut state = client.state();
        // Dropping the last handle makes the library send CloseSession.
        drop(client);
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            while !state.is_terminated() {
                state = states.changed().await;
            }
        })
        .await;
    }
}
