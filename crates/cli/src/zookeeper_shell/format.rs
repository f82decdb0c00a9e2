//! Text of zkCli's results: stat blocks, `[a, b]` lists, data and watch events.

use zookeeper_client::{EventType, SessionState, Stat, WatchedEvent};

use super::date::java_date;

/// zkCli's `StatPrinter`, each line ending in a newline. Hex values are Java's
/// `Long.toHexString` (lower case, two's complement for negatives).
pub fn stat_block(stat: &Stat) -> String {
    format!(
        "cZxid = 0x{:x}\nctime = {}\nmZxid = 0x{:x}\nmtime = {}\npZxid = 0x{:x}\n\
         cversion = {}\ndataVersion = {}\naclVersion = {}\nephemeralOwner = 0x{:x}\n\
         dataLength = {}\nnumChildren = {}\n",
        stat.czxid,
        java_date(stat.ctime),
        stat.mzxid,
        java_date(stat.mtime),
        stat.pzxid,
        stat.cversion,
        stat.version,
        stat.aversion,
        stat.ephemeral_owner,
        stat.data_length,
        stat.num_children,
    )
}

/// Java's `List.toString()`: `[a, b]`.
pub fn java_list<S: AsRef<str>>(items: &[S]) -> String {
    let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    format!("[{}]", items.join(", "))
}

/// Sorts as Java's `Collections.sort` on strings: by UTF-16 code units (differs from Rust's
/// order only between supplementary characters and U+E000..U+FFFF).
pub fn java_sort(names: &mut [String]) {
    names.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
}

/// znode data as `get` prints it: UTF-8 with replacement characters.
///
/// zkCli prints `null` for a znode without data. The client library reads a null payload and an
/// empty one alike, so an empty payload prints `null` too: `create /a` followed by `get /a`
/// then reads as it does in zkCli, and only data set explicitly to the empty string differs
/// (zkCli prints an empty line there).
pub fn data_text(data: &[u8]) -> String {
    if data.is_empty() {
        "null".to_string()
    } else {
        String::from_utf8_lossy(data).into_owned()
    }
}

/// Java's `Watcher.Event.KeeperState` name of a session state.
pub fn keeper_state(state: SessionState) -> &'static str {
    match state {
        SessionState::Disconnected => "Disconnected",
        SessionState::SyncConnected => "SyncConnected",
        SessionState::AuthFailed => "AuthFailed",
        SessionState::ConnectedReadOnly => "ConnectedReadOnly",
        SessionState::Expired => "Expired",
        SessionState::Closed => "Closed",
    }
}

/// Java's `ZooKeeper.States` name, shown in the interactive prompt.
pub fn prompt_state(state: SessionState) -> &'static str {
    match state {
        SessionState::SyncConnected => "CONNECTED",
        SessionState::ConnectedReadOnly => "CONNECTEDREADONLY",
        SessionState::Disconnected => "CONNECTING",
        SessionState::AuthFailed => "AUTH_FAILED",
        SessionState::Expired | SessionState::Closed => "CLOSED",
    }
}

/// The block zkCli's default watcher prints for a session state change.
pub fn state_event(state: SessionState) -> String {
    format!(
        "\nWATCHER::\n\nWatchedEvent state:{} type:None path:null\n",
        keeper_state(state)
    )
}

/// The block zkCli prints when a watch set with `-w` fires; `None` for session events, which
/// the shell reports once through [`state_event`] instead of once per watch.
pub fn node_event(event: &WatchedEvent) -> Option<String> {
    let kind = match event.event_type {
        EventType::Session => return None,
        EventType::NodeCreated => "NodeCreated",
        EventType::NodeDeleted => "NodeDeleted",
        EventType::NodeDataChanged => "NodeDataChanged",
        EventType::NodeChildrenChanged => "NodeChildrenChanged",
    };
    Some(format!(
        "\nWATCHER::\n\nWatchedEvent state:SyncConnected type:{kind} path:{}\n",
        event.path
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_block_matches_zkcli() {
        let stat = Stat {
            czxid: 0x100000002,
            mzxid: 0x10000000a,
            pzxid: 0x100000005,
            ctime: 1_795_610_391_000,
            mtime: 1_795_610_392_000,
            version: 2,
            cversion: 3,
            aversion: 1,
            ephemeral_owner: -1,
            data_length: 5,
            num_children: 3,
        };
        assert_eq!(
            stat_block(&stat),
            "cZxid = 0x100000002\n\
             ctime = Wed Nov 25 12:39:51 UTC 2026\n\
             mZxid = 0x10000000a\n\
             mtime = Wed Nov 25 12:39:52 UTC 2026\n\
             pZxid = 0x100000005\n\
             cversion = 3\n\
             dataVersion = 2\n\
             aclVersion = 1\n\
             ephemeralOwner = 0xffffffffffffffff\n\
             dataLength = 5\n\
             numChildren = 3\n"
        );
    }

    #[test]
    fn lists_and_sorting() {
        assert_eq!(java_list::<String>(&[]), "[]");
        assert_eq!(java_list(&["a", "b"]), "[a, b]");
        let mut names = vec![
            "\u{ff5e}".to_string(),
            "😀".to_string(),
            "b".to_string(),
            "B".to_string(),
        ];
        java_sort(&mut names);
        // UTF-16 order puts the surrogate pair (0xD83D...) before U+FF5E.
        assert_eq!(names, ["B", "b", "😀", "\u{ff5e}"]);
    }

    #[test]
    fn data_and_events() {
        assert_eq!(data_text(b""), "null");
        assert_eq!(data_text(b"hello"), "hello");
        assert_eq!(data_text(b"a\xffb"), "a\u{fffd}b");
        assert_eq!(
            state_event(SessionState::SyncConnected),
            "\nWATCHER::\n\nWatchedEvent state:SyncConnected type:None path:null\n"
        );
        assert_eq!(prompt_state(SessionState::SyncConnected), "CONNECTED");
    }
}
