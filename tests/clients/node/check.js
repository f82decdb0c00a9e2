// kafkajs (the Node.js client of web services) against a running cluster. Run by
// tests/tests/client_families.rs:
//
//   node check.js BOOTSTRAP BROKERS PREFIX
//
// Each step checks what the client observed and prints "ok <step> ..."; the first failure ends
// the program with a message and exit status 1.
//
//   admin    describe cluster, create/describe topics, describe/alter configs, create partitions
//   produce  idempotent producer, acks=all, uncompressed and gzip (kafkajs's built-in codecs);
//            offsets dense per partition
//   groups   two members split the partitions, one leaves, the other takes every partition back;
//            every record read; committed offsets reach the end
//   offsets  fetch topic offsets, delete records
//   cleanup  list/describe/delete groups, delete topics
'use strict';
const { Kafka, logLevel, CompressionTypes, ConfigResourceTypes } = require('kafkajs');

const [bootstrap, brokersArg, prefix] = process.argv.slice(2);
const brokers = Number(brokersArg);
const PARTITIONS = 4;
const PER_CODEC = 2000;
const topic = `${prefix}-events`;
const rf = Math.min(3, brokers);

function check(cond, what) {
  if (!cond) throw new Error(what);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitFor(what, cond, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    check(Date.now() < deadline, `timed out waiting for ${what}`);
    await sleep(50);
  }
}

const kafka = new Kafka({
  clientId: 'kafkajs-check',
  brokers: bootstrap.split(','),
  logLevel: logLevel.WARN,
  retry: { retries: 8 },
});

async function main() {
  const admin = kafka.admin();
  await admin.connect();

  // admin
  const cluster = await admin.describeCluster();
  check(cluster.brokers.length === brokers, `describeCluster: ${cluster.brokers.length} brokers`);
  check(cluster.controller !== null && cluster.controller >= 0, `controller ${cluster.controller}`);
  const created = await admin.createTopics({
    topics: [{ topic, numPartitions: PARTITIONS - 1, replicationFactor: rf,
      configEntries: [{ name: 'retention.ms', value: '3600000' }] }],
    waitForLeaders: true,
  });
  check(created === true, `createTopics answered ${created}`);
  await admin.createPartitions({ topicPartitions: [{ topic, count: PARTITIONS }] });
  let meta;
  await waitFor('every partition led with a full ISR', async () => {
    meta = await admin.fetchTopicMetadata({ topics: [topic] });
    const ps = meta.topics[0].partitions;
    return ps.length === PARTITIONS && ps.every((p) => p.leader >= 0 && p.isr.length === rf);
  });
  for (const p of meta.topics[0].partitions) {
    check(p.replicas.length === rf, `partition ${p.partitionId} replicas ${p.replicas}`);
  }
  await admin.alterConfigs({
    validateOnly: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic,
      configEntries: [{ name: 'retention.ms', value: '7200000' }] }],
  });
  const described = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['retention.ms'] }],
  });
  const retention = described.resources[0].configEntries.find((c) => c.configName === 'retention.ms');
  check(retention && retention.configValue === '7200000', `retention.ms ${JSON.stringify(retention)}`);
  console.log(`ok admin ${brokers} brokers, controller ${cluster.controller}, ${PARTITIONS} partitions rf ${rf}`);

  // produce
  let total = 0;
  for (const [name, codec] of [['none', CompressionTypes.None], ['gzip', CompressionTypes.GZIP]]) {
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const last = new Map();
    for (let batch = 0; batch < PER_CODEC / 500; batch++) {
      const messages = [];
      for (let i = batch * 500; i < (batch + 1) * 500; i++) {
        const key = `${name}-${i}`;
        messages.push({ key, value: `${key}-${'x'.repeat(i % 200)}`, partition: i % PARTITIONS });
      }
      const acks = await producer.send({ topic, messages, acks: -1, compression: codec });
      for (const a of acks) {
        check(a.errorCode === 0, `${name}: partition ${a.partition} error ${a.errorCode}`);
        const base = Number(a.baseOffset);
        if (last.has(a.partition)) {
          check(base === last.get(a.partition) + 125, `${name}: partition ${a.partition} base ${base} after ${last.get(a.partition)}`);
        }
        last.set(a.partition, base);
      }
    }
    await producer.disconnect();
    total += PER_CODEC;
  }
  console.log(`ok produce ${total} records, idempotent, acks=all, none and gzip`);

  // groups
  const groupId = `${prefix}-group`;
  const seen = new Map();
  async function member() {
    const consumer = kafka.consumer({ groupId, heartbeatInterval: 500, sessionTimeout: 10000, rebalanceTimeout: 10000 });
    const m = { consumer, assigned: [] };
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      m.assigned = e.payload.memberAssignment[topic] || [];
    });
    consumer.on(consumer.events.CRASH, (e) => {
      console.error(`consumer crashed: ${e.payload.error}`);
      process.exit(1);
    });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        const key = message.key.toString();
        check(message.value.toString().startsWith(`${key}-`), `value under key ${key}`);
        seen.set(key, (seen.get(key) || 0) + 1);
      },
    });
    return m;
  }
  const a = await member();
  await waitFor('first member holds every partition', () => a.assigned.length === PARTITIONS);
  const b = await member();
  await waitFor('two members split the partitions', () =>
    a.assigned.length === PARTITIONS / 2 && b.assigned.length === PARTITIONS / 2);
  await waitFor('every record read', () => seen.size === total, 60000);
  await b.consumer.disconnect();
  await waitFor('the remaining member takes every partition back', () => a.assigned.length === PARTITIONS);
  await sleep(500);
  await a.consumer.disconnect();
  console.log(`ok groups ${total} records read, split on join, taken back on leave`);

  // offsets
  const offsets = await admin.fetchTopicOffsets(topic);
  const p1 = offsets.find((o) => o.partition === 1);
  check(p1.low === '0' && Number(p1.high) === total / PARTITIONS, `partition 1 offsets ${JSON.stringify(p1)}`);
  const cut = Number(p1.high) / 2;
  await admin.deleteTopicRecords({ topic, partitions: [{ partition: 1, offset: String(cut) }] });
  const after = (await admin.fetchTopicOffsets(topic)).find((o) => o.partition === 1);
  check(Number(after.low) === cut, `low after deleteTopicRecords ${JSON.stringify(after)}`);
  console.log(`ok offsets 0..${p1.high}, deleteTopicRecords to ${cut}`);

  // cleanup
  const { groups } = await admin.listGroups();
  check(groups.some((g) => g.groupId === groupId), `listGroups lacks ${groupId}: ${JSON.stringify(groups)}`);
  const dg = await admin.describeGroups([groupId]);
  check(dg.groups[0].state === 'Empty', `group state ${dg.groups[0].state}`);
  const committed = await admin.fetchOffsets({ groupId, topics: [topic] });
  for (const p of committed[0].partitions) {
    check(Number(p.offset) === total / PARTITIONS, `committed ${JSON.stringify(p)}`);
  }
  await admin.deleteGroups([groupId]);
  await admin.deleteTopics({ topics: [topic] });
  await waitFor('topic deleted', async () => !(await admin.listTopics()).includes(topic));
  await admin.disconnect();
  console.log('ok cleanup group listed, described, committed at the end, deleted; topic deleted');
  console.log('done');
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`FAIL: ${e.stack || e}`);
    process.exit(1);
  },
);
