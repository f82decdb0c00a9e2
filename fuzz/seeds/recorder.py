#!/usr/bin/env python3
"""Records real client traffic and stored data as seed corpora for the fuzz targets (fuzz/).

Standard library only. Subcommands (record.sh drives them):

  relay     a loopback TCP relay that forwards every connection to a target unchanged and
            records what it carries (SIGUSR1 breaks every open connection; SIGTERM flushes
            and exits):
              --mode kafka  each client->server Kafka frame, without its 4-byte size prefix
              --mode zk     each connection's whole client->server stream (from its first byte,
                            at most 64 KiB), rewritten every few seconds and at close/SIGTERM
              --mode grpc   the gRPC messages of coord's peer RPC (HTTP/2 DATA frames), both
                            directions, prefixed with the raft_peer kind byte they decode as
  ports     prints N free loopback ports
  wait-kafka  waits until a broker answers ApiVersions v0
  segments  record_batches and log_recovery seeds from a broker's log.dirs
  snapshots raft_peer seeds from coord's raft-snapshots/snapshot.bin files
  finalize  merges staged seeds into fuzz/corpus/<target>/ (sha1 names), within the limits and
            keeping one of every kind seen (Kafka API key/version, ZooKeeper op, ...)
  summary   what the corpora hold
"""

import argparse
import hashlib
import os
import signal
import socket
import struct
import sys
import threading
import time

MAX_SEED = 64 * 1024

# --------------------------------------------------------------------------------------------
# Seeds on disk


def sha1(data):
    return hashlib.sha1(data).hexdigest()


def write_seed(directory, data, name=None):
    """Writes `data` as `directory/<sha1>` (or `name`), atomically; returns the path."""
    data = bytes(data[:MAX_SEED])
    if not data:
        return None
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name or sha1(data))
    if name is None and os.path.exists(path):
        return path
    tmp = "%s.tmp-%d-%d" % (path, os.getpid(), threading.get_ident())
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------------------------
# Relay


class KafkaRecorder:
    """Splits the client->server stream into size-prefixed frames; writes each frame."""

    def __init__(self, out):
        self.out = out
        self.buf = bytearray()
        self.skip = 0  # bytes of an oversized frame still to drop
        self.big = None  # (kept prefix, bytes still expected) of an oversized frame

    def c2s(self, data):
        self.buf += data
        while True:
            if self.big is not None:
                kept, left = self.big
                take = min(left, len(self.buf))
                room = MAX_SEED - len(kept)
                kept += self.buf[: min(take, max(room, 0))]
                del self.buf[:take]
                left -= take
                if left:
                    self.big = (kept, left)
                    return
                self.big = None
                write_seed(self.out, kept)
                continue
            if len(self.buf) < 4:
                return
            (size,) = struct.unpack(">i", self.buf[:4])
            if size < 0:
                self.buf.clear()  # not Kafka; stop recording this connection
                self.c2s = lambda data: None
                return
            if len(self.buf) - 4 >= size:
                frame = bytes(self.buf[4 : 4 + size])
                del self.buf[: 4 + size]
                write_seed(self.out, frame)
            elif size > MAX_SEED:
                del self.buf[:4]
                self.big = (bytearray(), size)
            else:
                return

    def s2c(self, data):
        pass

    def close(self):
        pass


class ZkRecorder:
    """Keeps a connection's first 64 KiB of client bytes; written at close and periodically."""

    live = set()
    lock = threading.Lock()
    counter = 0

    def __init__(self, out):
        self.out = out
        self.buf = bytearray()
        self.dirty = False
        with ZkRecorder.lock:
            ZkRecorder.counter += 1
            self.name = "zk-%d-%d" % (os.getpid(), ZkRecorder.counter)
            ZkRecorder.live.add(self)

    def c2s(self, data):
        room = MAX_SEED - len(self.buf)
        if room > 0:
            self.buf += data[:room]
            self.dirty = True

    def s2c(self, data):
        pass

    def flush(self):
        if self.dirty and self.buf:
            self.dirty = False
            write_seed(self.out, bytes(self.buf), name=self.name)

    def close(self):
        with ZkRecorder.lock:
            ZkRecorder.live.discard(self)
        self.flush()

    @classmethod
    def flush_all(cls):
        with cls.lock:
            live = list(cls.live)
        for r in live:
            try:
                r.flush()
            except OSError:
                pass


# ---- protobuf (proto/raft.proto), just enough to tell the messages apart


def read_varint(b, i):
    shift = value = 0
    while True:
        if i >= len(b) or shift > 63:
            raise ValueError("varint")
        c = b[i]
        i += 1
        value |= (c & 0x7F) << shift
        if not c & 0x80:
            return value, i
        shift += 7


def pb_fields(b):
    """[(field, wire type, value)] or ValueError."""
    out, i = [], 0
    while i < len(b):
        tag, i = read_varint(b, i)
        field, wt = tag >> 3, tag & 7
        if field == 0:
            raise ValueError("field 0")
        if wt == 0:
            v, i = read_varint(b, i)
        elif wt == 1:
            v, i = b[i : i + 8], i + 8
        elif wt == 2:
            n, i = read_varint(b, i)
            if i + n > len(b):
                raise ValueError("length")
            v, i = b[i : i + n], i + n
        elif wt == 5:
            v, i = b[i : i + 4], i + 4
        else:
            raise ValueError("wire type")
        if i > len(b):
            raise ValueError("truncated")
        out.append((field, wt, v))
    return out


V, B = "varint", "bytes"
LOG_ID = {1: V, 2: V, 3: V}
VOTE = {1: V, 2: V, 3: V}
BLANK = {}
NODE = {1: V, 2: B, 3: B}
NODE_ID_SET = {1: "packed"}
MEMBERSHIP = {1: NODE_ID_SET, 2: NODE}
STORED_MEMBERSHIP = {1: LOG_ID, 2: MEMBERSHIP}
ENTRY = {1: LOG_ID, 2: BLANK, 3: B, 4: MEMBERSHIP}
SNAPSHOT_META = {1: LOG_ID, 2: STORED_MEMBERSHIP, 3: B}
NOT_LEADER = {1: V}
SCHEMAS = {
    "AppendEntriesRequest": {1: VOTE, 2: LOG_ID, 3: ENTRY, 4: LOG_ID},
    "AppendEntriesResponse": {1: BLANK, 2: {1: LOG_ID}, 3: BLANK, 4: VOTE},
    "InstallSnapshotRequest": {1: VOTE, 2: SNAPSHOT_META, 3: V, 4: B, 5: V},
    "InstallSnapshotResponse": {1: VOTE, 2: {1: B, 2: V, 3: B, 4: V}},
    "ProposeRequest": {1: B},
    "ProposeResponse": {1: {1: V, 2: V, 3: B}, 2: NOT_LEADER},
    "ReadIndexRequest": {},
    "ReadIndexResponse": {1: {1: V}, 2: NOT_LEADER},
    "WatchLeaderRequest": {1: V, 2: V},
    "WatchLeaderResponse": {},
    "VoteRequest": {1: VOTE, 2: LOG_ID},
    "VoteResponse": {1: VOTE, 2: V, 3: LOG_ID},
}
# raft_peer's first byte for each message (crates/coord/src/raft/fuzzing.rs).
KIND = {
    "AppendEntriesRequest": 0,
    "AppendEntriesResponse": 1,
    "VoteRequest": 2,
    "VoteResponse": 3,
    "InstallSnapshotRequest": 4,
    "InstallSnapshotResponse": 5,
    "ProposeRequest": 7,
    "ProposeResponse": 7,
    "ReadIndexRequest": 7,
    "ReadIndexResponse": 7,
    "WatchLeaderRequest": 7,
    "WatchLeaderResponse": 7,
}
STORED = 6  # Entry / Vote / LogId as sled holds them
ENTRY_PAYLOAD = 0x80  # a committed entry's payload (postcard Batch) or snapshot bytes


def matches(b, schema):
    try:
        fields = pb_fields(b)
    except ValueError:
        return False
    for field, wt, v in fields:
        want = schema.get(field)
        if want is None:
            return False
        if want == V:
            if wt != 0:
                return False
        elif want == B:
            if wt != 2:
                return False
        elif want == "packed":
            if wt not in (0, 2):
                return False
        else:
            if wt != 2 or not matches(v, want):
                return False
    return True


def submessages(b, schema_path):
    """Values of the nested fields along `schema_path` (a list of field numbers)."""
    cur = [b]
    for field in schema_path:
        nxt = []
        for m in cur:
            try:
                nxt += [v for f, wt, v in pb_fields(m) if f == field and wt == 2]
            except ValueError:
                pass
        cur = nxt
    return cur


# raft_peer inputs longer than this are cut by scripts/fuzz.sh (-max_len), so a long message is
# re-encoded smaller rather than cut: fewer entries, or less snapshot data.
RAFT_SEED = 16 * 1024


def pb_varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_encode(fields):
    out = bytearray()
    for field, wt, v in fields:
        out += pb_varint(field << 3 | wt)
        if wt == 0:
            out += pb_varint(v)
        elif wt == 2:
            out += pb_varint(len(v)) + v
        else:
            out += v
    return bytes(out)


def fit_append(msg, limit=RAFT_SEED - 1):
    """An AppendEntriesRequest of at most `limit` bytes: the leading entries that fit."""
    if len(msg) <= limit:
        return msg
    try:
        fields = pb_fields(msg)
    except ValueError:
        return msg
    keep = [f for f in fields if f[0] != 3]
    size = len(pb_encode(keep))
    for f in fields:
        if f[0] == 3:
            n = len(pb_encode([f]))
            if size + n > limit:
                break
            keep.append(f)
            size += n
    return pb_encode(keep)


def fit_snapshot_chunk(msg, limit=RAFT_SEED - 3):
    """An InstallSnapshotRequest of at most `limit` bytes: its data cut to fit."""
    if len(msg) <= limit:
        return msg
    try:
        fields = pb_fields(msg)
    except ValueError:
        return msg[:limit]
    head = pb_encode([f for f in fields if f[0] != 4])
    room = max(limit - len(head) - 8, 0)
    return pb_encode([(f, wt, v[:room] if f == 4 else v) for f, wt, v in fields])


class H2Direction:
    """Reassembles gRPC messages from one direction of an HTTP/2 connection."""

    PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

    def __init__(self, client_side, on_message):
        self.buf = bytearray()
        self.need_preface = client_side
        self.streams = {}
        self.on_message = on_message
        self.dead = False

    def feed(self, data):
        if self.dead:
            return
        self.buf += data
        if self.need_preface:
            if len(self.buf) < len(self.PREFACE):
                return
            if self.buf[: len(self.PREFACE)] != self.PREFACE:
                self.dead = True
                return
            del self.buf[: len(self.PREFACE)]
            self.need_preface = False
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[0:3], "big")
            ftype, flags = self.buf[3], self.buf[4]
            stream = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            if len(self.buf) < 9 + length:
                return
            payload = bytes(self.buf[9 : 9 + length])
            del self.buf[: 9 + length]
            if ftype == 0:  # DATA
                if flags & 0x8 and payload:
                    pad = payload[0]
                    payload = payload[1 : len(payload) - pad]
                sb = self.streams.setdefault(stream, bytearray())
                sb += payload
                while len(sb) >= 5:
                    compressed = sb[0]
                    n = int.from_bytes(sb[1:5], "big")
                    if len(sb) < 5 + n:
                        break
                    msg = bytes(sb[5 : 5 + n])
                    del sb[: 5 + n]
                    if not compressed:
                        self.on_message(msg)
            if flags & 0x1 and ftype in (0, 1):  # END_STREAM
                self.streams.pop(stream, None)


class GrpcRecorder:
    """Writes raft_peer seeds for the messages of one peer or election connection."""

    def __init__(self, out, service):
        self.out = out
        self.service = service
        self.c2s_parser = H2Direction(True, lambda m: self.message(m, True))
        self.s2c_parser = H2Direction(False, lambda m: self.message(m, False))
        self.chunks = []  # InstallSnapshot requests of this connection

    def c2s(self, data):
        self.c2s_parser.feed(data)

    def s2c(self, data):
        self.s2c_parser.feed(data)

    def candidates(self, from_client):
        if self.service == "election":
            return ["VoteRequest"] if from_client else ["VoteResponse"]
        if from_client:
            return ["AppendEntriesRequest", "InstallSnapshotRequest", "ProposeRequest",
                    "ReadIndexRequest", "WatchLeaderRequest"]
        return ["AppendEntriesResponse", "InstallSnapshotResponse", "ProposeResponse",
                "ReadIndexResponse", "WatchLeaderResponse"]

    def seed(self, kind, body):
        if kind == 0:
            body = fit_append(body)
        elif kind == 4:
            body = fit_snapshot_chunk(body)
            body = struct.pack(">H", len(body)) + body
        write_seed(self.out, bytes([kind]) + body[:RAFT_SEED - 1])

    def message(self, msg, from_client):
        names = [n for n in self.candidates(from_client) if matches(msg, SCHEMAS[n])]
        if not names:
            # Not recognised: every kind it could be (the method is in HPACK'd headers).
            names = self.candidates(from_client)
        for kind in sorted({KIND[n] for n in names}):
            self.seed(kind, msg)
        if "AppendEntriesRequest" in names:
            for entry in submessages(msg, [3]):
                self.seed(STORED, entry)
                for payload in submessages(entry, [3]):
                    self.seed(ENTRY_PAYLOAD, payload)
            for sub in submessages(msg, [1]) + submessages(msg, [2]) + submessages(msg, [4]):
                self.seed(STORED, sub)
        if "VoteRequest" in names or "VoteResponse" in names:
            for sub in submessages(msg, [1]):
                self.seed(STORED, sub)
        if "ProposeRequest" in names:
            for payload in submessages(msg, [1]):
                self.seed(ENTRY_PAYLOAD, payload)
        if "InstallSnapshotRequest" in names:
            self.chunks.append(msg)
            for data in submessages(msg, [4]):
                self.seed(ENTRY_PAYLOAD, data)

    def close(self):
        if len(self.chunks) > 1:
            body = b""
            for c in self.chunks:
                c = fit_snapshot_chunk(c, (RAFT_SEED - 1) // len(self.chunks) - 2)
                body += struct.pack(">H", len(c)) + c
            write_seed(self.out, bytes([4]) + body)


def relay(args):
    host, port = args.target.rsplit(":", 1)
    target = (host, int(port))
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", args.listen))
    ls.listen(256)
    os.makedirs(args.out, exist_ok=True)

    def make_recorder():
        if args.mode == "kafka":
            return KafkaRecorder(args.out)
        if args.mode == "zk":
            return ZkRecorder(args.out)
        return GrpcRecorder(args.out, args.service)

    def pump(src, dst, feed, done):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                try:
                    feed(data)
                except Exception as e:  # recording must never disturb the traffic
                    print("recorder: %s" % e, file=sys.stderr)
                dst.sendall(data)
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        except OSError:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        finally:
            done.set()

    live = set()
    live_lock = threading.Lock()

    def handle(client):
        try:
            server = socket.create_connection(target, timeout=10)
        except OSError:
            client.close()
            return
        server.settimeout(None)
        with live_lock:
            live.add((client, server))
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rec = make_recorder()
        d1, d2 = threading.Event(), threading.Event()
        t = threading.Thread(target=pump, args=(server, client, rec.s2c, d2), daemon=True)
        t.start()
        pump(client, server, rec.c2s, d1)
        d2.wait()
        try:
            rec.close()
        except Exception as e:
            print("recorder: %s" % e, file=sys.stderr)
        with live_lock:
            live.discard((client, server))
        client.close()
        server.close()

    def drop_all(signum, frame):
        """SIGUSR1: break every open connection (clients then reconnect)."""
        with live_lock:
            pairs = list(live)
        for pair in pairs:
            for s in pair:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def periodic():
        while True:
            time.sleep(2)
            ZkRecorder.flush_all()

    def on_term(signum, frame):
        ZkRecorder.flush_all()
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGUSR1, drop_all)
    threading.Thread(target=periodic, daemon=True).start()
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write("%d\n" % os.getpid())
    while True:
        client, _ = ls.accept()
        threading.Thread(target=handle, args=(client,), daemon=True).start()


# --------------------------------------------------------------------------------------------
# Small helpers for record.sh


def ports(args):
    socks = []
    for _ in range(args.n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()


def wait_kafka(args):
    host, port = args.addr.rsplit(":", 1)
    deadline = time.time() + args.timeout
    req = bytes([0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0xFF, 0xFF])
    while time.time() < deadline:
        try:
            with socket.create_connection((host, int(port)), timeout=1) as s:
                s.settimeout(2)
                s.sendall(req)
                if len(s.recv(4)) == 4:
                    return 0
        except OSError:
            pass
        time.sleep(0.2)
    return 1


# --------------------------------------------------------------------------------------------
# Stored data: segments, partition directories, snapshots


def split_batches(data):
    """[(start, end)] of the whole batches at the front of a segment."""
    out, i = [], 0
    while i + 12 <= len(data):
        (length,) = struct.unpack(">i", data[i + 8 : i + 12])
        end = i + 12 + length
        if length <= 0 or end > len(data):
            break
        out.append((i, end))
        i = end
    return out


def truncate_on_batch(data, limit):
    end = 0
    for _, e in split_batches(data):
        if e > limit:
            break
        end = e
    return data[:end]


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def segments(args):
    n_batches = n_runs = n_dirs = 0
    for root in args.logs:
        for part in sorted(os.listdir(root)):
            pdir = os.path.join(root, part)
            if not os.path.isdir(pdir) or "-" not in part:
                continue
            logs = sorted(f for f in os.listdir(pdir) if f.endswith(".log"))
            if not logs:
                continue
            for log in logs:
                data = read(os.path.join(pdir, log))
                spans = split_batches(data)
                for s, e in spans:
                    if e - s <= MAX_SEED:
                        write_seed(args.batches, data[s:e])
                        n_batches += 1
                # Runs of 2-5 consecutive batches, from a few places in the segment.
                for n in range(2, 6):
                    if len(spans) < n:
                        break
                    starts = sorted({0, (len(spans) - n) // 2, len(spans) - n})
                    for st in starts:
                        s, e = spans[st][0], spans[st + n - 1][1]
                        if e - s <= MAX_SEED:
                            write_seed(args.batches, data[s:e])
                            n_runs += 1
            n_dirs += partition_dir_seeds(pdir, logs, args.recovery)
    print("segments: %d batches, %d runs, %d partition-directory seeds"
          % (n_batches, n_runs, n_dirs))


RECOVERY_FILES = [
    "00000000000000000000.log",
    "00000000000000000000.index",
    "00000000000000000000.timeindex",
    "00000000000000000050.log",
    "00000000000000000050.index",
    "00000000000000000050.timeindex",
    "leader-epoch-checkpoint",
]


def partition_dir_seeds(pdir, logs, out):
    """log_recovery seeds (`[file u8][len u16 BE][contents]*`) from one partition directory."""
    if RECOVERY_FILES[0] not in logs:
        return 0
    second = RECOVERY_FILES[3] in logs
    log0 = read(os.path.join(pdir, RECOVERY_FILES[0]))
    files = {0: truncate_on_batch(log0, 30000 if second else 60000)}
    if not files[0]:
        return 0

    def index(name, entry):
        d = read(os.path.join(pdir, name))[:4096]
        return d[: len(d) - len(d) % entry]

    files[1] = index(RECOVERY_FILES[1], 8)
    files[2] = index(RECOVERY_FILES[2], 12)
    if second:
        files[3] = truncate_on_batch(read(os.path.join(pdir, RECOVERY_FILES[3])), 24000)
        files[4] = index(RECOVERY_FILES[4], 8)
        files[5] = index(RECOVERY_FILES[5], 12)
    files[6] = read(os.path.join(pdir, RECOVERY_FILES[6]))[:4096]

    def seed(which):
        body = b"".join(bytes([k]) + struct.pack(">H", len(files[k])) + files[k]
                        for k in which if k in files)
        write_seed(out, body)

    sets = [[0], [0, 6], [0, 1, 2], sorted(files)]
    if second:
        sets += [[0, 3], [0, 1, 2, 3, 4, 5]]
    # A shorter log too: the first batch or two only, with everything else.
    short = truncate_on_batch(log0, 2048)
    for which in sets:
        seed(which)
    if short and short != files[0]:
        files[0] = short
        seed(sorted(files))
        return len(sets) + 1
    return len(sets)


def snapshots(args):
    n = 0
    for path in args.files:
        data = read(path)
        magic = b"SLUICESNAP1\n"
        if not data.startswith(magic) or len(data) < 16:
            continue
        (mlen,) = struct.unpack("<I", data[12:16])
        meta = data[16 : 16 + mlen]
        at = 16 + mlen
        if at + 8 > len(data):
            continue
        (dlen,) = struct.unpack("<Q", data[at : at + 8])
        app = data[at + 8 : at + 8 + dlen]
        if len(app) < RAFT_SEED:
            write_seed(args.out, bytes([ENTRY_PAYLOAD]) + app)
        # The header's log id and membership log id, as sled stores LogIds.
        for sub in submessages(meta, [1]) + submessages(meta, [2, 1]):
            write_seed(args.out, bytes([STORED]) + sub)
        n += 1
    print("snapshots: %d files" % n)


# --------------------------------------------------------------------------------------------
# What a seed is (for keeping variety and for the summary)

KAFKA_APIS = {
    0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit",
    9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat",
    13: "LeaveGroup", 14: "SyncGroup", 15: "DescribeGroups", 16: "ListGroups",
    17: "SaslHandshake", 18: "ApiVersions", 19: "CreateTopics", 20: "DeleteTopics",
    21: "DeleteRecords", 22: "InitProducerId", 23: "OffsetForLeaderEpoch",
    32: "DescribeConfigs", 33: "AlterConfigs", 36: "SaslAuthenticate", 37: "CreatePartitions",
    42: "DeleteGroups", 44: "IncrementalAlterConfigs", 60: "DescribeCluster",
    61: "DescribeProducers", 68: "ConsumerGroupHeartbeat", 69: "ConsumerGroupDescribe",
    71: "GetTelemetrySubscriptions", 72: "PushTelemetry", 75: "DescribeTopicPartitions",
}

ZK_OPS = {
    0: "notification", 1: "create", 2: "delete", 3: "exists", 4: "getData", 5: "setData",
    6: "getACL", 7: "setACL", 8: "getChildren", 9: "sync", 11: "ping", 12: "getChildren2",
    13: "check", 14: "multi", 15: "create2", 16: "reconfig", 17: "checkWatches",
    18: "removeWatches", 19: "createContainer", 20: "deleteContainer", 21: "createTTL",
    22: "multiRead", 100: "auth", 101: "setWatches", 102: "sasl", 103: "getEphemerals",
    104: "getAllChildrenNumber", 105: "setWatches2", 106: "addWatch", 107: "whoAmI",
    -10: "createSession", -11: "closeSession",
}
FOUR_LETTER = {b"ruok", b"srvr", b"mntr", b"stat", b"conf", b"cons", b"wchs", b"envi",
               b"dump", b"crst", b"srst", b"isro", b"gtmk", b"wchc", b"wchp", b"dirs"}


def batch_codec(data, at):
    """(codec, producer id) of the batch header at `at`, or None."""
    if at + 61 > len(data) or data[at + 16] != 2:
        return None
    attrs = struct.unpack(">h", data[at + 21 : at + 23])[0]
    pid = struct.unpack(">q", data[at + 43 : at + 51])[0]
    return attrs & 7, pid, bool(attrs & 0x10), bool(attrs & 0x20)


def zigzag(b, i):
    v, i = read_varint(b, i)
    return (v >> 1) ^ -(v & 1), i


def first_key(batch):
    """The first record's key of an uncompressed batch, or None."""
    try:
        i = 61
        _, i = zigzag(batch, i)  # record length
        i += 1  # attributes
        _, i = zigzag(batch, i)  # timestamp delta
        _, i = zigzag(batch, i)  # offset delta
        klen, i = zigzag(batch, i)
        return batch[i : i + klen] if klen >= 0 else None
    except (ValueError, IndexError):
        return None


def zk_ops(data):
    if data[:4] in FOUR_LETTER:
        return ["4lw:" + data[:4].decode()]
    ops, i, first = [], 0, True
    while i + 4 <= len(data):
        (n,) = struct.unpack(">i", data[i : i + 4])
        if n < 0:
            break
        frame = data[i + 4 : i + 4 + n]
        i += 4 + n
        if first:
            first = False
            ops.append("connect" + ("+readOnly" if len(frame) % 2 == 1 else ""))
            continue
        if len(frame) >= 8:
            xid, op = struct.unpack(">ii", frame[:8])
            ops.append(ZK_OPS.get(op, "op%d" % op))
    if i < len(data):
        ops.append("(truncated)")
    return ops


def kafka_produce_codec(frame):
    for at in range(8, min(len(frame), 4096) - 61):
        if frame[at : at + 8] == b"\0" * 8 and frame[at + 16] == 2:
            (length,) = struct.unpack(">i", frame[at + 8 : at + 12])
            if 0 < length <= len(frame) - at - 12:
                c = batch_codec(frame, at)
                return "codec%d%s" % (c[0], "+idempotent" if c[1] >= 0 else "")
    return "no-batch"


def categories(target, data):
    """The kinds of thing a seed holds; the corpus keeps at least one seed of each."""
    if target == "kafka_request":
        if len(data) < 4:
            return {"short"}
        key, ver = struct.unpack(">hh", data[:4])
        cats = {"api%d.v%d" % (key, ver)}
        if key == 0:
            cats.add("produce.v%d.%s" % (ver, kafka_produce_codec(data)))
        return cats
    if target == "zk_client":
        return set(zk_ops(data)) or {"empty"}
    if target == "record_batches":
        spans = split_batches(data)
        cats = {"batches%d" % min(len(spans), 5)}
        for s, _ in spans[:5]:
            c = batch_codec(data, s)
            if c is None:
                continue
            codec, pid, txn, control = c
            cats.add("codec%d" % codec)
            cats.add("idempotent" if pid >= 0 else "plain")
            if control:
                cats.add("control")
            if codec == 0:
                key = first_key(data[s:])
                if key and len(key) >= 2 and key[:2] in (b"\0\0", b"\0\1", b"\0\2"):
                    cats.add("offsets-key%d" % key[1])
        return cats
    if target == "log_recovery":
        files, i = [], 0
        while i + 3 <= len(data):
            files.append(data[i])
            i += 3 + struct.unpack(">H", data[i + 1 : i + 3])[0]
        cats = {"files" + "".join(str(f) for f in files)}
        if len(data) > 3 and data[0] == 0:
            c = batch_codec(data, 3)
            if c:
                cats.add("codec%d" % c[0])
                cats.add("idempotent" if c[1] >= 0 else "plain")
        return cats
    if target == "raft_peer":
        if not data:
            return {"empty"}
        k = data[0]
        if k >= 0x80:
            return {"entry-payload"}
        cats = {"kind%d" % k}
        if k == 0:
            cats.add("append-with-entries" if submessages(data[1:], [3]) else "heartbeat")
        if k == 6:
            body = data[1:]
            if matches(body, ENTRY) and submessages(body, [1]):
                try:
                    which = {f for f, _, _ in pb_fields(body)} & {2, 3, 4}
                except ValueError:
                    which = set()
                cats.add("stored-entry-%s" % {2: "blank", 3: "normal", 4: "membership"}.get(
                    min(which or {0}), "none"))
        return cats
    return {sha1(data)}  # properties: every file is its own kind


# --------------------------------------------------------------------------------------------
# Finalize: staged seeds -> fuzz/corpus/<target>


def is_seed_name(name):
    return len(name) == 40 and all(c in "0123456789abcdef" for c in name)


def finalize(args):
    items = {}  # sha1 -> (data, existing)
    if not args.fresh and os.path.isdir(args.corpus):
        for name in os.listdir(args.corpus):
            if is_seed_name(name):
                data = read(os.path.join(args.corpus, name))
                if data and len(data) <= MAX_SEED:
                    items[sha1(data)] = (data, True)
    staged = 0
    for d in args.staging:
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            if ".tmp-" in name:
                continue
            data = read(os.path.join(d, name))[:MAX_SEED]
            if data:
                staged += 1
                h = sha1(data)
                if h not in items:
                    items[h] = (data, False)
    by_cat = {}
    for h, (data, existing) in items.items():
        for c in categories(args.target, data):
            by_cat.setdefault(c, []).append(h)
    order = lambda h: (not items[h][1], h)  # kept seeds first (stable reruns), then by hash
    for c in by_cat:
        by_cat[c].sort(key=order)
    chosen, total = [], 0
    chosen_set = set()

    def take(h):
        nonlocal total
        n = len(items[h][0])
        if h in chosen_set or len(chosen) >= args.max_files or total + n > args.max_bytes:
            return False
        chosen.append(h)
        chosen_set.add(h)
        total += n
        return True

    # One of every kind first (a kept one, else the smallest), then round-robin over the kinds.
    for c in sorted(by_cat):
        if not any(h in chosen_set for h in by_cat[c]):
            for h in sorted(by_cat[c], key=lambda h: (not items[h][1], len(items[h][0]), h)):
                if take(h):
                    break
    # Then round-robin over the kinds, at most --per-kind seeds of each: kept seeds come first,
    # so a rerun adds seeds of kinds not seen before rather than near-copies of kept ones.
    count = {c: sum(1 for h in by_cat[c] if h in chosen_set) for c in by_cat}
    for kept_only in (True, False):
        cursors = {c: 0 for c in by_cat}
        progress = True
        while progress and len(chosen) < args.max_files:
            progress = False
            for c in sorted(by_cat):
                lst = by_cat[c]
                while count[c] < args.per_kind and cursors[c] < len(lst):
                    h = lst[cursors[c]]
                    cursors[c] += 1
                    if h in chosen_set or (kept_only and not items[h][1]):
                        continue
                    if take(h):
                        for c2 in categories(args.target, items[h][0]):
                            count[c2] = count.get(c2, 0) + 1
                        progress = True
                        break
    os.makedirs(args.corpus, exist_ok=True)
    for name in os.listdir(args.corpus):
        if is_seed_name(name) and name not in chosen_set:
            os.remove(os.path.join(args.corpus, name))
    for h in chosen:
        path = os.path.join(args.corpus, h)
        if not os.path.exists(path):
            write_seed(args.corpus, items[h][0])
    print("%-15s %4d seeds, %8d bytes (from %d staged, %d distinct, %d kinds)"
          % (args.target, len(chosen), total, staged, len(items), len(by_cat)))


def summary(args):
    for target in sorted(os.listdir(args.root)):
        d = os.path.join(args.root, target)
        if not os.path.isdir(d):
            continue
        names = [n for n in os.listdir(d) if is_seed_name(n)]
        sizes = [os.path.getsize(os.path.join(d, n)) for n in names]
        print("%s: %d files, %d bytes (largest %d)"
              % (target, len(names), sum(sizes), max(sizes or [0])))
        counts = {}
        for n in names:
            for c in categories(target, read(os.path.join(d, n))):
                counts[c] = counts.get(c, 0) + 1
        if target == "kafka_request":
            apis = {}
            for c in counts:
                if c.startswith("api"):
                    k, v = c[3:].split(".v")
                    apis.setdefault(int(k), []).append(int(v))
            for k in sorted(apis):
                print("  %2d %-24s v%s" % (k, KAFKA_APIS.get(k, "?"),
                                          ",".join(str(v) for v in sorted(apis[k]))))
            print("  produce: " + ", ".join(sorted(c for c in counts if c.startswith("produce"))))
        elif target != "properties":
            print("  " + ", ".join("%s:%d" % (c, counts[c]) for c in sorted(counts)))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("relay")
    r.add_argument("--mode", choices=["kafka", "zk", "grpc"], required=True)
    r.add_argument("--listen", type=int, required=True)
    r.add_argument("--target", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--service", choices=["peer", "election"], default="peer")
    r.add_argument("--ready-file")
    r = sub.add_parser("ports")
    r.add_argument("n", type=int)
    r = sub.add_parser("wait-kafka")
    r.add_argument("addr")
    r.add_argument("--timeout", type=float, default=60)
    r = sub.add_parser("segments")
    r.add_argument("--batches", required=True)
    r.add_argument("--recovery", required=True)
    r.add_argument("logs", nargs="+")
    r = sub.add_parser("snapshots")
    r.add_argument("--out", required=True)
    r.add_argument("files", nargs="*")
    r = sub.add_parser("finalize")
    r.add_argument("--target", required=True)
    r.add_argument("--corpus", required=True)
    r.add_argument("--max-files", type=int, default=400)
    r.add_argument("--max-bytes", type=int, default=2_000_000)
    r.add_argument("--per-kind", type=int, default=48)
    r.add_argument("--fresh", action="store_true")
    r.add_argument("staging", nargs="*")
    r = sub.add_parser("summary")
    r.add_argument("root")
    a = p.parse_args()
    fn = {"relay": relay, "ports": ports, "wait-kafka": wait_kafka, "segments": segments,
          "snapshots": snapshots, "finalize": finalize, "summary": summary}[a.cmd]
    sys.exit(fn(a) or 0)


if __name__ == "__main__":
    main()
