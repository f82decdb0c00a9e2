// sarama (IBM/sarama; the client inside Filebeat, Burrow and many Go services) against a running
// cluster, with the protocol version Filebeat configures by default (2.1.0). Run by
// tests/tests/client_families.rs:
//
//	sarama BOOTSTRAP BROKERS PREFIX
//
// Each step checks what the client observed and prints "ok <step> ..."; the first failure ends
// the program with a message and exit status 1.
//
//	admin    describe cluster, create/describe topics
//	sync     idempotent SyncProducer, acks=all, every codec; offsets dense per partition
//	async    AsyncProducer (as Filebeat's output uses it): every success returned, none failed
//	groups   two range members split the partitions, one leaves, the other takes every partition
//	         back; every record read; committed offsets reach the end
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

	"github.com/IBM/sarama"
)

const partitions = 4
const perCodec = 2000

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

func config() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_1_0_0
	cfg.ClientID = "sarama-check"
	return cfg
}

// handler is a consumer group member's view: what it holds and what it read.
type handler struct {
	mu       sync.Mutex
	assigned map[int32]bool
	seen     *sync.Map
	count    *int64
	countMu  *sync.Mutex
}

func (h *handler) Setup(s sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	h.assigned = map[int32]bool{}
	for _, ps := range s.Claims() {
		for _, p := range ps {
			h.assigned[p] = true
		}
	}
	h.mu.Unlock()
	return nil
}

func (h *handler) Cleanup(s sarama.ConsumerGroupSession) error {
	s.Commit()
	h.mu.Lock()
	h.assigned = map[int32]bool{}
	h.mu.Unlock()
	return nil
}

func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		if _, dup := h.seen.LoadOrStore(string(m.Key), true); !dup {
			h.countMu.Lock()
			*h.count++
			h.countMu.Unlock()
		}
		s.MarkMessage(m, "")
	}
	return nil
}

func (h *handler) held() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.assigned)
}

func waitFor(what string, cond func() bool) {
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		check(time.Now().Before(deadline), "timed out waiting for %s", what)
		time.Sleep(50 * time.Millisecond)
	}
}

func main() {
	addrs := strings.Split(os.Args[1], ",")
	brokers, _ := strconv.Atoi(os.Args[2])
	prefix := os.Args[3]
	topic := prefix + "-events"
	rf := int16(min(3, brokers))

	// admin
	adm, err := sarama.NewClusterAdmin(addrs, config())
	must(err, "cluster admin")
	defer adm.Close()
	bs, controller, err := adm.DescribeCluster()
	must(err, "describe cluster")
	check(len(bs) == brokers, "describe cluster: %d brokers", len(bs))
	check(controller >= 0, "describe cluster: controller %d", controller)
	ret := "3600000"
	must(adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: rf,
		ConfigEntries: map[string]*string{"retention.ms": &ret}}, false), "create topic")
	var md []*sarama.TopicMetadata
	for i := 0; i < 100; i++ {
		md, err = adm.DescribeTopics([]string{topic})
		must(err, "describe topics")
		led := 0
		for _, p := range md[0].Partitions {
			if p.Leader >= 0 && len(p.Isr) == int(rf) {
				led++
			}
		}
		if led == partitions {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	check(len(md[0].Partitions) == partitions, "partitions %d", len(md[0].Partitions))
	fmt.Printf("ok admin %d brokers, controller %d, %d partitions rf %d\n", len(bs), controller, partitions, rf)

	// sync
	codecs := map[string]sarama.CompressionCodec{
		"none": sarama.CompressionNone, "gzip": sarama.CompressionGZIP, "snappy": sarama.CompressionSnappy,
		"lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD,
	}
	total := 0
	for name, codec := range codecs {
		cfg := config()
		cfg.Producer.RequiredAcks = sarama.WaitForAll
		cfg.Producer.Idempotent = true
		cfg.Net.MaxOpenRequests = 1
		cfg.Producer.Return.Successes = true
		cfg.Producer.Compression = codec
		cfg.Producer.Partitioner = sarama.NewManualPartitioner
		cfg.Producer.Flush.Frequency = 5 * time.Millisecond
		p, err := sarama.NewSyncProducer(addrs, cfg)
		must(err, "sync producer")
		msgs := make([]*sarama.ProducerMessage, 0, perCodec)
		for i := 0; i < perCodec; i++ {
			key := fmt.Sprintf("%s-%d", name, i)
			msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: int32(i % partitions),
				Key: sarama.StringEncoder(key), Value: sarama.StringEncoder(key + "-" + strings.Repeat("x", i%200))})
		}
		must(p.SendMessages(msgs), "send "+name)
		last := map[int32]int64{}
		for _, m := range msgs {
			if prev, ok := last[m.Partition]; ok {
				check(m.Offset == prev+1, "%s: partition %d offset %d after %d", name, m.Partition, m.Offset, prev)
			}
			last[m.Partition] = m.Offset
		}
		must(p.Close(), "close sync producer")
		total += perCodec
	}
	fmt.Printf("ok sync %d records, idempotent, acks=all, every codec\n", total)

	// async
	cfg := config()
	cfg.Producer.RequiredAcks = sarama.WaitForLocal
	cfg.Producer.Return.Successes = true
	cfg.Producer.Compression = sarama.CompressionSnappy
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	ap, err := sarama.NewAsyncProducer(addrs, cfg)
	must(err, "async producer")
	go func() {
		for i := 0; i < perCodec; i++ {
			key := fmt.Sprintf("async-%d", i)
			ap.Input() <- &sarama.ProducerMessage{Topic: topic, Partition: int32(i % partitions),
				Key: sarama.StringEncoder(key), Value: sarama.StringEncoder(key + "-")}
		}
	}()
	ok := 0
	for ok < perCodec {
		select {
		case <-ap.Successes():
			ok++
		case e := <-ap.Errors():
			fail("async producer: %v", e.Err)
		case <-time.After(30 * time.Second):
			fail("async producer: %d of %d acknowledged", ok, perCodec)
		}
	}
	must(ap.Close(), "close async producer")
	total += perCodec
	fmt.Printf("ok async %d records acknowledged\n", perCodec)

	// groups
	group := prefix + "-group"
	gcfg := config()
	gcfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	gcfg.Consumer.Offsets.AutoCommit.Interval = 200 * time.Millisecond
	gcfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
	var seen sync.Map
	var count int64
	var countMu sync.Mutex
	read := func() int64 { countMu.Lock(); defer countMu.Unlock(); return count }
	type member struct {
		cg     sarama.ConsumerGroup
		h      *handler
		cancel context.CancelFunc
		done   chan struct{}
	}
	start := func() *member {
		cg, err := sarama.NewConsumerGroup(addrs, group, gcfg)
		must(err, "consumer group")
		ctx, cancel := context.WithCancel(context.Background())
		m := &member{cg: cg, h: &handler{assigned: map[int32]bool{}, seen: &seen, count: &count, countMu: &countMu},
			cancel: cancel, done: make(chan struct{})}
		go func() {
			defer close(m.done)
			for ctx.Err() == nil {
				if err := cg.Consume(ctx, []string{topic}, m.h); err != nil && ctx.Err() == nil {
					fail("consume: %v", err)
				}
			}
		}()
		go func() {
			for e := range cg.Errors() {
				fail("consumer group error: %v", e)
			}
		}()
		return m
	}
	leave := func(m *member) {
		m.cancel()
		<-m.done
		must(m.cg.Close(), "close consumer group")
	}
	a := start()
	waitFor("first member holds every partition", func() bool { return a.h.held() == partitions })
	b := start()
	waitFor("two members split the partitions", func() bool { return a.h.held() == partitions/2 && b.h.held() == partitions/2 })
	waitFor("every record read", func() bool { return read() == int64(total) })
	leave(b)
	waitFor("the remaining member takes every partition back", func() bool { return a.h.held() == partitions })
	leave(a)
	fmt.Printf("ok groups %d records read, split on join, taken back on leave\n", total)

	// cleanup
	groups, err := adm.ListConsumerGroups()
	must(err, "list consumer groups")
	_, listed := groups[group]
	check(listed, "list consumer groups lacks %s: %v", group, groups)
	dg, err := adm.DescribeConsumerGroups([]string{group})
	must(err, "describe consumer groups")
	check(len(dg) == 1 && dg[0].State == "Empty", "group %+v", dg)
	offs, err := adm.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1, 2, 3}})
	must(err, "list consumer group offsets")
	for p := int32(0); p < partitions; p++ {
		blk := offs.GetBlock(topic, p)
		check(blk != nil && blk.Offset == int64(total/partitions), "committed offset of partition %d: %+v", p, blk)
	}
	must(adm.DeleteConsumerGroup(group), "delete consumer group")
	must(adm.DeleteTopic(topic), "delete topic")
	fmt.Println("ok cleanup group listed, described, committed at the end, deleted; topic deleted")
	fmt.Println("done")
}
