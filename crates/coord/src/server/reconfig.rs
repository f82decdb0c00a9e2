//! ZooKeeper's `reconfig` (opcode 16) and the `/zookeeper/config` node it maintains.
//!
//! ```text
//!  reconfig request ─► checks (reconfigEnabled, WRITE on /zookeeper/config unless skipACL,
//!        │              fromConfig version, the new member list: quorum_config::apply)
//!        ▼
//!  RaftNode::change_members (learners, catch-up, joint consensus; on the leader)
//!        ▼
//!  Command::SetConfig through the log ─► /zookeeper/config = lines + version=<its zxid>,
//!                                        data watch fires, the reply carries data + stat
//! ```
//!
//! The Raft membership is the truth; `/zookeeper/config` is written from it. If a leader dies
//! between the two, the next leader's [`reconcile`] writes the configuration the membership
//! holds, and it does so on a new ensemble's first start as well.

use std::sync::Arc;
use std::time::Duration;

use sluice_jute::{perms, ErrorCode, Id, ReconfigRequest};
use tokio::sync::oneshot;

use super::{Applied, Core, ProposeFailed};
use crate::machine::{Command, CommandResult, ConfigWrite};
use crate::quorum_config::{self, ReconfigArgs};
use crate::raft::{ChangeError, MemberChange, RaftNode};
use crate::tree::acl::check_acl;
use crate::tree::CONFIG;

/// The `server.N` lines of the membership `raft` holds, when it is settled (not half-way
/// through a change and not empty).
pub(crate) fn membership_lines(raft: &RaftNode) -> Option<String> {
    let m = raft.members();
    if m.joint || m.log_index.is_none() || m.voters.is_empty() {
        return None;
    }
    Some(quorum_config::servers_text(&quorum_config::servers_of(
        &m.voters,
        &m.learners,
    )))
}

/// On the leader: writes the membership into `/zookeeper/config` when the two differ.
/// Returns the receiver of the write, if one was submitted.
pub(crate) fn reconcile(
    core: &Core,
    raft: &RaftNode,
) -> Option<oneshot::Receiver<Result<Applied, ProposeFailed>>> {
    let lines = membership_lines(raft)?;
    if lines == super::reconfig_tree_lines(core) {
        return None;
    }
    tracing::info!(node = core.settings.node_id, config = %lines.trim_end(), "writing the ensemble's configuration into /zookeeper/config");
    Some(core.submit(Command::SetConfig(ConfigWrite {
        servers: lines,
        static_version: !core.settings.reconfig_enabled,
        always: false,
    })))
}

fn fail(code: ErrorCode) -> Result<Applied, ProposeFailed> {
    Ok(Applied {
        zxid: 0,
        result: CommandResult::Error(code),
    })
}

/// Starts a `reconfig`; its answer comes through the receiver as a write's does. A lost
/// leader or quorum drops the connection (`ProposeFailed`), as for any write.
pub(crate) fn start(
    core: &Arc<Core>,
    req: ReconfigRequest,
    auth: Vec<Id>,
) -> oneshot::Receiver<Result<Applied, ProposeFailed>> {
    let (tx, rx) = oneshot::channel();
    let core = core.clone();
    tokio::spawn(async move {
        let outcome = run(&core, req, &auth).await;
        if let Ok(Applied {
            result: CommandResult::Error(code),
            ..
        }) = &outcome
        {
            tracing::info!(node = core.settings.node_id, ?code, "reconfig refused");
        }
        let _ = tx.send(outcome);
    });
    rx
}

async fn run(core: &Core, req: ReconfigRequest, auth: &[Id]) -> Result<Applied, ProposeFailed> {
    let settings = &core.settings;
    if !settings.reconfig_enabled || settings.standalone {
        return fail(ErrorCode::ReconfigDisabled);
    }
    let Some(raft) = core.raft() else {
        return Err(ProposeFailed);
    };
    if !settings.skip_acl {
        let machine = core.machine.read().unwrap_or_else(|e| e.into_inner());
        let allowed = machine
            .tree()
            .acl(CONFIG)
            .is_some_and(|acl| check_acl(acl, perms::WRITE, auth));
        if !allowed {
            return fail(ErrorCode::NoAuth);
        }
    }
    // The version check is against what this node shows in /zookeeper/config.
    let current_text = {
        let machine = core.machine.read().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(machine.tree().config_data()).into_owned()
    };
    let version = quorum_config::parse_config(&current_text)
        .map(|(_, v)| v)
        .unwrap_or(0);
    if req.cur_config_id != -1 && req.cur_config_id != version {
        return fail(ErrorCode::BadVersion);
    }
    let members = raft.members();
    if members.joint {
        return fail(ErrorCode::ReconfigInProgress);
    }
    let current = quorum_config::servers_of(&members.voters, &members.learners);
    let args = ReconfigArgs {
        joining: req.joining_servers,
        leaving: req.leaving_servers,
        members: req.new_members,
    };
    let next = match quorum_config::apply(&current, &args) {
        Ok(n) => n,
        Err(why) => {
            tracing::info!(node = settings.node_id, %why, "reconfig: bad arguments");
            return fail(ErrorCode::BadArguments);
        }
    };
    let change = MemberChange {
        voters: next
            .values()
            .filter(|s| s.role == sluice_config::PeerRole::Participant)
            .map(|s| (s.id, s.addrs()))
            .collect(),
        learners: next
            .values()
            .filter(|s| s.role == sluice_config::PeerRole::Observer)
            .map(|s| (s.id, s.addrs()))
            .collect(),
        based_on: members.log_index,
    };
    tracing::info!(node = settings.node_id, config = %quorum_config::servers_text(&next).trim_end(), "reconfig: changing the ensemble");
    match raft
        .change_members(change, settings.reconfig_sync_timeout)
        .await
    {
        Ok(()) => {}
        Err(ChangeError::InProgress | ChangeError::Changed) => {
            return fail(ErrorCode::ReconfigInProgress)
        }
        Err(ChangeError::NoQuorum(why)) => {
            tracing::warn!(node = settings.node_id, %why, "reconfig: no quorum of the new configuration");
            return fail(ErrorCode::NewConfigNoQuorum);
        }
        Err(ChangeError::Invalid(why)) => {
            tracing::info!(node = settings.node_id, %why, "reconfig: bad arguments");
            return fail(ErrorCode::BadArguments);
        }
        Err(e @ (ChangeError::NoLeader(_) | ChangeError::Failed(_))) => {
            tracing::warn!(node = settings.node_id, error = %e, "reconfig: outcome unknown");
            return Err(ProposeFailed);
        }
    }
    // The membership has changed; now the configuration node. When the leader removed itself
    // the write waits for the next one, and may need to be sent again.
    let lines = quorum_config::servers_text(&next);
    let deadline = tokio::time::Instant::now() + raft.propose_timeout() * 4;
    loop {
        let rx = core.submit(Command::SetConfig(ConfigWrite {
            servers: lines.clone(),
            static_version: false,
            always: true,
        }));
        if let Ok(Ok(Ok(applied))) = tokio::time::timeout(Duration::from_secs(60), rx).await {
            return Ok(applied);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ProposeFailed);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        // A new leader may have written the membership itself meanwhile.
        let machine = core.machine.read().unwrap_or_else(|e| e.into_inner());
        if super::reconfig_tree_lines_of(machine.tree()) == lines {
            let data = machine.tree().config_data().to_vec();
            let stat = machine.tree().stat(CONFIG).unwrap_or_default();
            return Ok(Applied {
                zxid: machine.last_zxid(),
                result: CommandResult::Config { data, stat },
            });
        }
    }
}
