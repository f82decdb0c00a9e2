//! Topic creation through the admin API (CreateTopics), and waiting until the metadata shows a
//! leader for every partition, so that a run never measures leader election.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use serde::Serialize;

use super::options::{CreateTopicArgs, TopicShape};
use super::{client_config, emit};

/// How long topic creation plus leader election may take.
const READY_LIMIT: Duration = Duration::from_secs(30);

/// What [`ensure_topic`] found or did.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct TopicState {
    /// The topic did not exist and kafka-load created it.
    pub created: bool,
    /// Partitions of the topic (as the broker reports them).
    pub partitions: i32,
}

/// Creates `topic` with `shape` unless it exists, then waits until every partition has a leader.
pub fn ensure_topic(bootstrap: &str, topic: &str, shape: &TopicShape) -> Result<TopicState> {
    let admin: AdminClient<DefaultClientContext> = client_config(bootstrap)
        .create()
        .context("create the admin client")?;
    let config = super::options::properties(&shape.topic_config)?;
    let mut new = NewTopic::new(
        topic,
        shape.partitions,
        TopicReplication::Fixed(shape.replication_factor),
    );
    for (k, v) in &config {
        new = new.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(READY_LIMIT));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start a runtime for the admin request")?;
    let results = runtime
        .block_on(admin.create_topics([&new], &opts))
        .with_context(|| format!("CreateTopics {topic}"))?;
    let mut created = false;
    for r in results {
        match r {
            Ok(_) => created = true,
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("CreateTopics {name}: {code:?}"),
        }
    }
    let partitions = wait_for_leaders(&admin, topic)?;
    if !created && partitions != shape.partitions {
        eprintln!(
            "kafka-load: topic {topic} exists with {partitions} partitions (--partitions {} ignored)",
            shape.partitions
        );
    }
    Ok(TopicState {
        created,
        partitions,
    })
}

/// Waits until the metadata lists `topic` with a leader for every partition; returns the number
/// of partitions.
fn wait_for_leaders(admin: &AdminClient<DefaultClientContext>, topic: &str) -> Result<i32> {
    let deadline = Instant::now() + READY_LIMIT;
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        match admin
            .inner()
            .fetch_metadata(Some(topic), Duration::from_secs(5))
        {
            Ok(md) => {
                if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
                    let ready = t.error().is_none()
                        && !t.partitions().is_empty()
                        && t.partitions()
                            .iter()
                            .all(|p| p.error().is_none() && p.leader() >= 0);
                    if ready {
                        return Ok(t.partitions().len() as i32);
                    }
                    last = format!(
                        "topic error {:?}, {} partitions",
                        t.error(),
                        t.partitions().len()
                    );
                }
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("topic {topic} has no leader for every partition after {READY_LIMIT:?} ({last})")
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    tool: &'static str,
    mode: &'static str,
    bootstrap_server: &'a str,
    topic: &'a str,
    replication_factor: i32,
    #[serde(flatten)]
    state: TopicState,
    elapsed_s: f64,
}

pub fn run(args: &CreateTopicArgs) -> Result<u8> {
    args.target.check()?;
    args.shape.check()?;
    let start = Instant::now();
    let state = ensure_topic(
        &args.target.bootstrap_server,
        &args.target.topic,
        &args.shape,
    )?;
    let elapsed = start.elapsed().as_secs_f64();
    let human = format!(
        "kafka-load create-topic: {} {} with {} partitions, ready in {elapsed:.3} s",
        args.target.topic,
        if state.created {
            "created"
        } else {
            "already existed"
        },
        state.partitions
    );
    emit(
        &human,
        &Report {
            tool: "kafka-load",
            mode: "create-topic",
            bootstrap_server: &args.target.bootstrap_server,
            topic: &args.target.topic,
            replication_factor: args.shape.replication_factor,
            state,
            elapsed_s: elapsed,
        },
    )?;
    Ok(0)
}
