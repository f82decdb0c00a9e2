//! The command line of `zookeeper-shell`.
//!
//! Both spellings in use are accepted: zkCli's `-server HOST:PORT [cmd args]` and Kafka's
//! `zookeeper-shell.sh HOST:PORT [cmd args]`, where the first plain word is the server. zkCli's
//! `-timeout MS` (session timeout) and `-r` (read-only) are honoured and `-waitforconnection` is
//! accepted (the shell always waits). Options are read only before the command: everything from
//! the command on is passed to it untouched, so `zookeeper-shell h:2181 create /a -e` works.

use std::time::Duration;

/// zkCli's default `-timeout`.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_millis(30_000);

/// A parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invocation {
    /// `-h` / `--help`.
    Help,
    Run(Options),
}

/// What to connect to and what to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// `host:port[,host:port...][/chroot]`, as given (also shown in the prompt).
    pub server: String,
    pub session_timeout: Duration,
    pub readonly: bool,
    /// The one-shot command and its arguments; empty for an interactive shell.
    pub command: Vec<String>,
}

/// A command line that cannot be run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvocationError(pub String);

/// The usage text printed for `--help` and for a bad command line.
pub const USAGE: &str = "\
Usage: zookeeper-shell [-server] host:port[,host:port...][/chroot] [-timeout ms] [-r] [command [args...]]
Without a command, reads commands from standard input until `quit` or end of input.";

pub fn parse<I>(args: I) -> Result<Invocation, InvocationError>
where
    I: IntoIterator<Item = String>,
{
    let mut args = args.into_iter();
    let mut server = None;
    let mut session_timeout = DEFAULT_SESSION_TIMEOUT;
    let mut readonly = false;
    let mut command = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "-help" | "--help" => return Ok(Invocation::Help),
            "-server" => {
                let value = args.next().ok_or_else(|| missing(&arg))?;
                server = Some(value);
            }
            "-timeout" => {
                let value = args.next().ok_or_else(|| missing(&arg))?;
                let millis: u64 = value.parse().ok().filter(|ms| *ms > 0).ok_or_else(|| {
                    InvocationError(format!(
                        "-timeout takes a positive number of milliseconds, not {value:?}"
                    ))
                })?;
                session_timeout = Duration::from_millis(millis);
            }
            "-r" => readonly = true,
            "-waitforconnection" => {}
            other if other.starts_with('-') && other.len() > 1 => {
                return Err(InvocationError(format!("unknown option {other}")));
            }
            _ if server.is_none() => server = Some(arg),
            _ => {
                command.push(arg);
                command.extend(args.by_ref());
            }
        }
    }
    let server = server
        .filter(|s| !s.is_empty())
        .ok_or_else(|| InvocationError("no server given (host:port)".to_string()))?;
    Ok(Invocation::Run(Options {
        server,
        session_timeout,
        readonly,
        command,
    }))
}

fn missing(option: &str) -> InvocationError {
    InvocationError(format!("no argument found for option {option}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str) -> Options {
        match parse(line.split_whitespace().map(str::to_string)) {
            Ok(Invocation::Run(options)) => options,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn error(line: &str) -> String {
        parse(line.split_whitespace().map(str::to_string))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn kafka_style_server_first() {
        let o = run("127.0.0.1:2181 ls /");
        assert_eq!(o.server, "127.0.0.1:2181");
        assert_eq!(o.command, ["ls", "/"]);
        assert_eq!(o.session_timeout, DEFAULT_SESSION_TIMEOUT);
        assert!(!o.readonly);
    }

    #[test]
    fn zkcli_style_server_option() {
        let o = run("-server a:1,b:2/app get -s /x");
        assert_eq!(o.server, "a:1,b:2/app");
        assert_eq!(o.command, ["get", "-s", "/x"]);
    }

    #[test]
    fn interactive_without_a_command() {
        assert!(run("-server a:1").command.is_empty());
        assert!(run("a:1").command.is_empty());
    }

    #[test]
    fn options_before_the_command_only() {
        let o = run("-timeout 5000 -r a:1 -waitforconnection create -e /x -r");
        assert_eq!(o.session_timeout, Duration::from_millis(5000));
        assert!(o.readonly);
        assert_eq!(o.command, ["create", "-e", "/x", "-r"]);
    }

    #[test]
    fn help() {
        assert_eq!(parse(["--help".to_string()]).unwrap(), Invocation::Help);
        assert_eq!(
            parse(["a:1".to_string(), "-h".to_string()]).unwrap(),
            Invocation::Help
        );
    }

    #[test]
    fn bad_command_lines() {
        assert_eq!(error(""), "no server given (host:port)");
        assert_eq!(error("-server"), "no argument found for option -server");
        assert_eq!(
            error("-timeout x a:1"),
            "-timeout takes a positive number of milliseconds, not \"x\""
        );
        assert_eq!(
            error("-zk-tls-config-file f a:1"),
            "unknown option -zk-tls-config-file"
        );
    }
}
