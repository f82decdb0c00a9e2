// franz-go (kgo and kadm; the client of Benthos/Redpanda Connect and many Go services) against a
// running cluster. Run by tests/tests/client_families.rs:
//
//	franz BOOTSTRAP BROKERS PREFIX
//
// Each step checks what the client observed and prints "ok <step> ..."; the first failure ends
// the program with a message and exit status 1.
//
//	admin    list brokers, create/describe topics, describe/alter configs, create partitions
//	produce  idempotent acks=all producer with every codec; offsets dense per partition
//	groups   two cooperative-sticky members split the partitions, one leaves, the other takes
//	         every partition back; every record read; committed offsets reach the end (lag 0)
//	offsets  list start/end offsets, delete records
//	cleanup  list/describe/delete groups, delete topics
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const partitions = 4
const perCodec = 2000

var ctx = context.Background()

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func check(cond bool, format string, args ...any) {
	if !cond {
		fail(format, args...)
	}
}

func must(err error, what string) {
	if err != nil {
		fail("%s: %v", what, err)
	}
}

func main() {
	seeds := strings.Split(os.Args[1], ",")
	brokers, _ := strconv.Atoi(os.Args[2])
	prefix := os.Args[3]
	topic := prefix + "-events"
	rf := int16(min(3, brokers))

	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	must(err, "client")
	defer cl.Close()
	adm := kadm.NewClient(cl)

	// admin
	bs, err := adm.ListBrokers(ctx)
	must(err, "list brokers")
	check(len(bs) == brokers, "list brokers: %d, want %d", len(bs), brokers)
	ret := "3600000"
	ct, err := adm.CreateTopics(ctx, partitions-1, rf, map[string]*string{"retention.ms": &ret}, topic)
	must(err, "create topics")
	must(ct[topic].Err, "create topic "+topic)
	_, err = adm.CreatePartitions(ctx, 1, topic)
	must(err, "create partitions")
	var md kadm.Metadata
	for i := 0; i < 100; i++ {
		md, err = adm.Metadata(ctx, topic)
		must(err, "metadata")
		td := md.Topics[topic]
		led := 0
		for _, p := range td.Partitions {
			if p.Leader >= 0 && len(p.ISR) == int(rf) {
				led++
			}
		}
		if led == partitions {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	td := md.Topics[topic]
	check(len(td.Partitions) == partitions, "partitions %d", len(td.Partitions))
	for _, p := range td.Partitions {
		check(len(p.Replicas) == int(rf), "partition %d replicas %v", p.Partition, p.Replicas)
		check(p.Leader >= 0, "partition %d has no leader", p.Partition)
	}
	check(md.Controller >= 0, "no controller in metadata")
	longer := "7200000"
	ac, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: &longer}}, topic)
	must(err, "alter configs")
	for _, r := range ac {
		must(r.Err, "alter config of "+r.Name)
	}
	rc, err := adm.DescribeTopicConfigs(ctx, topic)
	must(err, "describe configs")
	got := ""
	for _, r := range rc {
		must(r.Err, "describe config")
		for _, c := range r.Configs {
			if c.Key == "retention.ms" && c.Value != nil {
				got = *c.Value
			}
		}
	}
	check(got == longer, "retention.ms after alter: %q", got)
	fmt.Printf("ok admin %d brokers, controller %d, %d partitions rf %d\n", len(bs), md.Controller, partitions, rf)

	// produce
	codecs := map[string]kgo.CompressionCodec{
		"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}
	total := 0
	for name, codec := range codecs {
		p, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ProducerBatchCompression(codec),
			kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.ProducerLinger(5*time.Millisecond))
		must(err, "producer")
		recs := make([]*kgo.Record, 0, perCodec)
		for i := 0; i < perCodec; i++ {
			key := fmt.Sprintf("%s-%d", name, i)
			recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % partitions), Key: []byte(key),
				Value: []byte(key + "-" + strings.Repeat("x", i%200))})
		}
		res := p.ProduceSync(ctx, recs...)
		must(res.FirstErr(), "produce "+name)
		last := map[int32]int64{}
		for _, r := range res {
			if prev, ok := last[r.Record.Partition]; ok {
				check(r.Record.Offset == prev+1, "%s: partition %d offset %d after %d", name, r.Record.Partition, r.Record.Offset, prev)
			}
			last[r.Record.Partition] = r.Record.Offset
		}
		p.Close()
		total += perCodec
	}
	fmt.Printf("ok produce %d records, idempotent, acks=all, every codec\n", total)

	// groups
	group := prefix + "-group"
	var mu sync.Mutex
	seen := map[string]int{}
	type member struct {
		cl       *kgo.Client
		mu       sync.Mutex
		assigned map[int32]bool
		done     chan struct{}
	}
	start := func() *member {
		m := &member{assigned: map[int32]bool{}, done: make(chan struct{})}
		c, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
				m.mu.Lock()
				for _, p := range a[topic] {
					m.assigned[p] = true
				}
				m.mu.Unlock()
			}),
			kgo.OnPartitionsRevoked(func(ctx context.Context, c *kgo.Client, r map[string][]int32) {
				must(c.CommitUncommittedOffsets(ctx), "commit on revoke")
				m.mu.Lock()
				for _, p := range r[topic] {
					delete(m.assigned, p)
				}
				m.mu.Unlock()
			}))
		must(err, "consumer")
		m.cl = c
		go func() {
			defer close(m.done)
			for {
				fs := c.PollFetches(ctx)
				if fs.IsClientClosed() {
					return
				}
				fs.EachError(func(t string, p int32, err error) { fail("fetch %s/%d: %v", t, p, err) })
				fs.EachRecord(func(r *kgo.Record) {
					mu.Lock()
					seen[string(r.Key)]++
					mu.Unlock()
				})
			}
		}()
		return m
	}
	held := func(m *member) int {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.assigned)
	}
	waitFor := func(what string, cond func() bool) {
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			check(time.Now().Before(deadline), "timed out waiting for %s", what)
			time.Sleep(50 * time.Millisecond)
		}
	}
	a := start()
	waitFor("first member holds every partition", func() bool { return held(a) == partitions })
	b := start()
	waitFor("two members split the partitions", func() bool { return held(a) == partitions/2 && held(b) == partitions/2 })
	waitFor("every record read", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == total })
	must(b.cl.CommitUncommittedOffsets(ctx), "commit b")
	b.cl.Close()
	<-b.done
	waitFor("the remaining member takes every partition back", func() bool { return held(a) == partitions })
	must(a.cl.CommitUncommittedOffsets(ctx), "commit a")
	lags, err := adm.Lag(ctx, group)
	must(err, "lag")
	gl := lags[group]
	must(gl.Error(), "group lag")
	check(gl.Lag.Total() == 0, "group lag %d after reading everything", gl.Lag.Total())
	check(len(gl.Members) == 1, "members %d", len(gl.Members))
	a.cl.Close()
	<-a.done
	fmt.Printf("ok groups %d records read, split on join, taken back on leave, lag 0\n", total)

	// offsets
	starts, err := adm.ListStartOffsets(ctx, topic)
	must(err, "list start offsets")
	ends, err := adm.ListEndOffsets(ctx, topic)
	must(err, "list end offsets")
	s1, _ := starts.Lookup(topic, 1)
	e1, _ := ends.Lookup(topic, 1)
	check(s1.Offset == 0 && e1.Offset == int64(total/partitions), "partition 1 offsets %d..%d", s1.Offset, e1.Offset)
	cut := e1.Offset / 2
	del := kadm.Offsets{}
	del.Add(kadm.Offset{Topic: topic, Partition: 1, At: cut})
	dr, err := adm.DeleteRecords(ctx, del)
	must(err, "delete records")
	r1, _ := dr.Lookup(topic, 1)
	must(r1.Err, "delete records of partition 1")
	check(r1.LowWatermark == cut, "low watermark %d", r1.LowWatermark)
	starts, err = adm.ListStartOffsets(ctx, topic)
	must(err, "list start offsets")
	s1, _ = starts.Lookup(topic, 1)
	check(s1.Offset == cut, "start after delete records %d", s1.Offset)
	fmt.Printf("ok offsets 0..%d, delete records to %d\n", e1.Offset, cut)

	// cleanup
	lg, err := adm.ListGroups(ctx)
	must(err, "list groups")
	_, listed := lg[group]
	check(listed, "list groups lacks %s: %v", group, lg.Groups())
	dg, err := adm.DescribeGroups(ctx, group)
	must(err, "describe groups")
	check(dg[group].State == "Empty", "group state %q", dg[group].State)
	fo, err := adm.FetchOffsets(ctx, group)
	must(err, "fetch offsets")
	o0, ok := fo.Lookup(topic, 0)
	check(ok && o0.At == int64(total/partitions), "committed offset of partition 0: %+v", o0)
	dgr, err := adm.DeleteGroups(ctx, group)
	must(err, "delete groups")
	must(dgr[group].Err, "delete group")
	dt, err := adm.DeleteTopics(ctx, topic)
	must(err, "delete topics")
	must(dt[topic].Err, "delete topic")
	fmt.Println("ok cleanup groups listed, described, deleted; topic deleted")
	fmt.Println("done")
}
