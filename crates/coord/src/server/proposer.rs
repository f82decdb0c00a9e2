//! The proposer task: turns queued commands into log entries, one entry in flight at a time,
//! so that while one entry commits the next fills up and a busy ensemble writes large entries.
//!
//! ```text
//!  connections ─ Proposal (command + reply) ─┐
//!  session touches (Core::touched) ──────────┼─► one Batch ─► RaftNode::propose ─► results,
//!  other nodes' batches (ForwardedProposal) ─┘   per entry     (forwarded to the     split back
//!                                                               leader if need be)  in order
//! ```
//!
//! A follower's proposer sends its batch to the leader's `Propose` RPC, where the leader's
//! proposer merges it, whole and in order, into the leader's own next entry: one entry per round
//! of the ensemble instead of one per node that clients write through, so the leader's fsync,
//! the AppendEntries round trip and the followers' fsyncs are paid once for all of them. Each
//! forwarded batch gets back its share of the results, with the entry's term and index.
//!
//! Order: commands of one connection are queued in the order they arrived and stay in that order
//! in the entry; a follower has at most one batch at the leader at a time, so its batches are
//! applied in the order it sent them.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::{lock, now_ms, Applied, Batch, Core, Proposal, ProposeFailed};
use crate::machine::{Command, CommandResult};
use crate::raft::{ForwardedProposal, ProposeError, ProposeOutcome, RaftNode};

/// Most commands of this node's own in one log entry; more wait for the next entry.
const MAX_BATCH_COMMANDS: usize = 4096;
/// Rough byte budget of one log entry (a larger write, up to `jute.maxbuffer`, still goes in
/// alone). Forwarded batches are taken whole until it is reached, so an entry may hold one more
/// batch beyond it. Kept small enough for a follower to append one entry well within
/// openraft's AppendEntries timeout.
const MAX_BATCH_BYTES: usize = 2 << 20;

/// A batch another node forwarded, decoded, with where its answer goes.
struct Forwarded {
    batch: Batch,
    proposal: ForwardedProposal,
    /// The `sync` requests in it: ZooKeeper's leader counts learners' syncs waiting for their
    /// turn as `pending_syncs` until it answers them.
    syncs: u64,
}

pub(super) async fn run(
    core: Arc<Core>,
    raft: RaftNode,
    mut rx: mpsc::UnboundedReceiver<Proposal>,
    mut forwarded_rx: mpsc::UnboundedReceiver<ForwardedProposal>,
    mut stop: watch::Receiver<bool>,
) {
    let touch_every =
        Duration::from_millis((core.settings.min_session_timeout_ms.max(200) / 4) as u64);
    let mut touch_tick = tokio::time::interval(touch_every);
    touch_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending: Vec<Proposal> = Vec::new();
    let mut forwarded: Vec<Forwarded> = Vec::new();
    loop {
        if pending.is_empty() && forwarded.is_empty() {
            tokio::select! {
                _ = stop.changed() => return,
                p = rx.recv() => match p {
                    Some(p) => pending.push(p),
                    None => return,
                },
                f = forwarded_rx.recv() => match f {
                    Some(f) => take_forwarded(&core, f, &mut forwarded),
                    None => return,
                },
                _ = touch_tick.tick() => {
                    if lock(&core.touched).is_empty() {
                        continue;
                    }
                }
            }
        }
        let mut bytes = pending.iter().map(|p| approx_size(&p.cmd)).sum::<usize>()
            + forwarded
                .iter()
                .map(|f| batch_size(&f.batch))
                .sum::<usize>();
        while pending.len() < MAX_BATCH_COMMANDS && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += approx_size(&p.cmd);
                    pending.push(p);
                }
                Err(_) => break,
            }
        }
        while bytes < MAX_BATCH_BYTES {
            match forwarded_rx.try_recv() {
                Ok(f) => {
                    take_forwarded(&core, f, &mut forwarded);
                    bytes += forwarded.last().map_or(0, |f| batch_size(&f.batch));
                }
                Err(_) => break,
            }
        }

        // This node's commands first, then each forwarded batch whole, in arrival order.
        let mut touches: HashSet<i64> = lock(&core.touched).drain().collect();
        let mut commands: Vec<Command> = pending.iter().map(|p| p.cmd.clone()).collect();
        let mut shares = Vec::with_capacity(forwarded.len());
        for f in &mut forwarded {
            let start = commands.len();
            commands.append(&mut f.batch.commands);
            touches.extend(f.batch.touches.drain(..));
            shares.push(start..commands.len());
        }
        let batch = Batch::new(now_ms(), commands, touches.into_iter().collect());
        let outcome = match batch.encode() {
            Ok(payload) => raft.propose(payload).await,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a log entry");
                Err(ProposeError::Fatal(format!(
                    "cannot encode a log entry: {e}"
                )))
            }
        };
        let replies: Vec<Proposal> = std::mem::take(&mut pending);
        let others: Vec<Forwarded> = std::mem::take(&mut forwarded);
        match outcome {
            Ok(out) => {
                // A forwarded write returns once the leader applied it; answer only after this
                // node applied it too, so the client's next read here sees its write.
                let mut applied = core.applied.subscribe();
                let _ = tokio::time::timeout(
                    Duration::from_secs(30),
                    applied.wait_for(|i| *i >= out.index),
                )
                .await;
                let results: Vec<(i64, CommandResult)> =
                    postcard::from_bytes(&out.response).unwrap_or_default();
                for (f, share) in others.into_iter().zip(shares) {
                    core.stats
                        .pending_syncs
                        .fetch_sub(f.syncs, Ordering::Relaxed);
                    let mine = results.get(share).unwrap_or_default();
                    let answer = postcard::to_stdvec(mine)
                        .map(|response| ProposeOutcome {
                            term: out.term,
                            index: out.index,
                            response: Bytes::from(response),
                        })
                        .map_err(|e| {
                            ProposeError::Fatal(format!("cannot encode the results: {e}"))
                        });
                    f.proposal.answer(answer);
                }
                let mut results = results.into_iter();
                for p in replies {
                    let r = results
                        .next()
                        .map(|(zxid, result)| Applied { zxid, result })
                        .ok_or(ProposeFailed);
                    let _ = p.reply.send(r);
                }
            }
            Err(e) => {
                if matches!(e, ProposeError::Refused(_)) {
                    // The space check warns itself, at most once every 10 s.
                    tracing::debug!(error = %e, commands = replies.len(), "log entry refused");
                } else {
                    tracing::warn!(error = %e, commands = replies.len(), "log entry not committed");
                }
                for p in replies {
                    let _ = p.reply.send(Err(ProposeFailed));
                }
                for f in others {
                    core.stats
                        .pending_syncs
                        .fetch_sub(f.syncs, Ordering::Relaxed);
                    f.proposal.answer(Err(e.clone()));
                }
            }
        }
    }
}

/// Decodes a forwarded batch; one that does not decode is answered at once (a peer running
/// incompatible code) and proposes nothing.
fn take_forwarded(core: &Core, proposal: ForwardedProposal, into: &mut Vec<Forwarded>) {
    match Batch::decode(&proposal.payload) {
        Ok(batch) => {
            let syncs = batch
                .commands
                .iter()
                .filter(|c| matches!(c, Command::Sync { .. }))
                .count() as u64;
            core.stats.pending_syncs.fetch_add(syncs, Ordering::Relaxed);
            into.push(Forwarded {
                batch,
                proposal,
                syncs,
            });
        }
        Err(e) => {
            tracing::warn!(error = %e, "a forwarded log entry does not decode; refused");
            proposal.answer(Err(ProposeError::Fatal(format!(
                "the forwarded entry does not decode: {e}"
            ))));
        }
    }
}

fn batch_size(batch: &Batch) -> usize {
    batch.commands.iter().map(approx_size).sum::<usize>() + 8 * batch.touches.len()
}

fn approx_size(cmd: &Command) -> usize {
    use crate::machine::WriteOp;
    match cmd {
        Command::Write { op, .. } => match op {
            WriteOp::Create(c) => 64 + c.path.len() + c.data.as_ref().map_or(0, Vec::len),
            WriteOp::SetData { path, data, .. } => {
                64 + path.len() + data.as_ref().map_or(0, Vec::len)
            }
            WriteOp::Multi(ops) => 64 + ops.len() * 128,
            _ => 96,
        },
        _ => 64,
    }
}
