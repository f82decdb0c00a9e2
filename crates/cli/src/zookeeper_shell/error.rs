//! Errors of the shell, worded as zkCli words them.
//!
//! A failed command prints one message (on stderr unless noted) and sets the exit status: 127 for
//! an unknown command, 1 for everything else, as zkCli's `CliException`s do. Server errors on a
//! path read as zkCli's `CliWrapperException` (`Node does not exist: /a`), other server errors as
//! Java's `KeeperException.getMessage()` (`KeeperErrorCode = ConnectionLoss for /a`).

use zookeeper_client::Error as ZkError;

/// A command that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    /// Wrong words for the command; the message is usually the command's usage line.
    #[error("{0}")]
    Usage(String),
    /// A path refused by the client-side checks.
    #[error("{0}")]
    MalformedPath(String),
    #[error("Command not found: {0}")]
    CommandNotFound(String),
    /// The server (or the client library) refused an operation on `path`.
    #[error("{}", wrapper_message(.source, .path.as_deref()))]
    Keeper {
        source: ZkError,
        path: Option<String>,
    },
    /// The session is gone (expired, closed, or refused by `addauth`); printed on stdout.
    #[error("Not connected")]
    NotConnected,
    /// A failure already shown to the user (as a session event); nothing more to print.
    #[error("")]
    Reported,
    /// A failure zkCli reports in its own words rather than as an exception.
    #[error("{message}")]
    Failed { message: String, on_stdout: bool },
}

impl ShellError {
    pub fn keeper(source: ZkError, path: &str) -> Self {
        ShellError::Keeper {
            source,
            path: Some(path.to_string()),
        }
    }

    /// The process exit status zkCli uses for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            ShellError::CommandNotFound(_) => 127,
            _ => 1,
        }
    }

    /// Whether zkCli prints this message on stdout instead of stderr.
    pub fn on_stdout(&self) -> bool {
        match self {
            ShellError::NotConnected => true,
            ShellError::Failed { on_stdout, .. } => *on_stdout,
            _ => false,
        }
    }
}

/// zkCli's `CliWrapperException` text for a server error on `path` (`null` when there is none,
/// as for an ACL refused before it is sent).
pub fn wrapper_message(err: &ZkError, path: Option<&str>) -> String {
    let p = path.unwrap_or("null");
    match err {
        ZkError::NoNode => format!("Node does not exist: {p}"),
        ZkError::NoChildrenForEphemerals => format!("Ephemerals cannot have children: {p}"),
        ZkError::NodeExists => format!("Node already exists: {p}"),
        ZkError::NotEmpty => format!("Node not empty: {p}"),
        ZkError::NotReadOnly => format!("Not a read-only call: {p}"),
        ZkError::InvalidAcl => format!("Acl is not valid : {p}"),
        ZkError::NoAuth => format!("Insufficient permission : {p}"),
        ZkError::BadArguments(_) => format!("Arguments are not valid : {p}"),
        ZkError::BadVersion => format!("version No is not valid : {p}"),
        ZkError::QuotaExceeded => format!("Quota has exceeded : {p}"),
        other => keeper_message(other, path),
    }
}

/// Java's `KeeperException.getMessage()`: `KeeperErrorCode = <code>[ for <path>]`. Errors of
/// the client library with no ZooKeeper code keep the library's own text.
pub fn keeper_message(err: &ZkError, path: Option<&str>) -> String {
    let Some(code) = code_message(err) else {
        return err.to_string();
    };
    match path {
        Some(p) if !p.is_empty() => format!("KeeperErrorCode = {code} for {p}"),
        _ => format!("KeeperErrorCode = {code}"),
    }
}

/// ZooKeeper's numeric code for `err` (zkCli prints it after `Sync has failed. rc=`).
pub fn error_code(err: &ZkError) -> i32 {
    match err {
        ZkError::ConnectionLoss | ZkError::ClientClosed => -4,
        ZkError::MarshallingError => -5,
        ZkError::Unimplemented => -6,
        ZkError::Timeout => -7,
        ZkError::BadArguments(_) => -8,
        ZkError::NoNode => -101,
        ZkError::NoAuth => -102,
        ZkError::BadVersion => -103,
        ZkError::NoChildrenForEphemerals => -108,
        ZkError::NodeExists => -110,
        ZkError::NotEmpty => -111,
        ZkError::SessionExpired => -112,
        ZkError::InvalidAcl => -114,
        ZkError::AuthFailed => -115,
        ZkError::SessionMoved => -118,
        ZkError::NotReadOnly => -119,
        ZkError::NoWatcher => -121,
        ZkError::ReconfigDisabled => -123,
        ZkError::QuotaExceeded => -125,
        ZkError::Throttled => -127,
        ZkError::UnexpectedErrorCode(code) => *code,
        _ => -1,
    }
}

/// `KeeperException.getCodeMessage` for the codes the client library can report.
fn code_message(err: &ZkError) -> Option<String> {
    let text = match err {
        ZkError::ConnectionLoss => "ConnectionLoss",
        ZkError::MarshallingError => "MarshallingError",
        ZkError::Unimplemented => "Unimplemented",
        ZkError::Timeout => "OperationTimeout",
        ZkError::BadArguments(_) => "BadArguments",
        ZkError::NoNode => "NoNode",
        ZkError::NoAuth => "NoAuth",
        ZkError::BadVersion => "BadVersion",
        ZkError::NoChildrenForEphemerals => "NoChildrenForEphemerals",
        ZkError::NodeExists => "NodeExists",
        ZkError::InvalidAcl => "InvalidACL",
        ZkError::AuthFailed => "AuthFailed",
        ZkError::NotEmpty => "Directory not empty",
        ZkError::SessionExpired => "Session expired",
        ZkError::SessionMoved => "Session moved",
        ZkError::NotReadOnly => "Not a read-only call",
        ZkError::NoWatcher => "No such watcher",
        ZkError::ReconfigDisabled => "Reconfig is disabled",
        ZkError::QuotaExceeded => "Quota has exceeded",
        ZkError::Throttled => "Op throttled due to high load",
        ZkError::UnexpectedErrorCode(code) => {
            return Some(
                match code {
                    -1 => "SystemError",
                    -2 => "RuntimeInconsistency",
                    -3 => "DataInconsistency",
                    -7 => "OperationTimeout",
                    -13 => "NewConfigNoQuorum",
                    -14 => "ReconfigInProgress",
                    -100 => "APIError",
                    -113 => "Invalid callback",
                    -120 => "Ephemeral node on local session",
                    _ => return Some(format!("Unknown error {code}")),
                }
                .to_string(),
            )
        }
        _ => return None,
    };
    Some(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapper_messages() {
        let msg = |e: ZkError| wrapper_message(&e, Some("/a"));
        assert_eq!(msg(ZkError::NoNode), "Node does not exist: /a");
        assert_eq!(msg(ZkError::NodeExists), "Node already exists: /a");
        assert_eq!(msg(ZkError::NotEmpty), "Node not empty: /a");
        assert_eq!(msg(ZkError::BadVersion), "version No is not valid : /a");
        assert_eq!(msg(ZkError::NoAuth), "Insufficient permission : /a");
        assert_eq!(
            msg(ZkError::NoChildrenForEphemerals),
            "Ephemerals cannot have children: /a"
        );
        assert_eq!(
            msg(ZkError::Unimplemented),
            "KeeperErrorCode = Unimplemented for /a"
        );
        assert_eq!(
            wrapper_message(&ZkError::InvalidAcl, None),
            "Acl is not valid : null"
        );
    }

    #[test]
    fn keeper_messages() {
        assert_eq!(
            keeper_message(&ZkError::NoAuth, Some("/t1")),
            "KeeperErrorCode = NoAuth for /t1"
        );
        assert_eq!(
            keeper_message(&ZkError::InvalidAcl, None),
            "KeeperErrorCode = InvalidACL"
        );
        assert_eq!(
            keeper_message(&ZkError::UnexpectedErrorCode(-1), Some("/x")),
            "KeeperErrorCode = SystemError for /x"
        );
        assert_eq!(
            keeper_message(&ZkError::UnexpectedErrorCode(-999), None),
            "KeeperErrorCode = Unknown error -999"
        );
    }

    #[test]
    fn exit_codes_and_streams() {
        assert_eq!(ShellError::CommandNotFound("x".into()).exit_code(), 127);
        assert_eq!(ShellError::Usage("u".into()).exit_code(), 1);
        assert!(ShellError::NotConnected.on_stdout());
        assert!(!ShellError::keeper(ZkError::NoNode, "/a").on_stdout());
        assert_eq!(
            ShellError::keeper(ZkError::NoNode, "/a").to_string(),
            "Node does not exist: /a"
        );
    }
}
