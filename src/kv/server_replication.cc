// KvServer's side of replication (see server.h): as owner, each applied
// update goes into the partition's stream to its backup, a new backup gets
// a snapshot first, and acknowledgements confirm updates (which releases
// the replies waiting for them); as backup, updates and snapshots from the
// owner are applied in order. Kept apart from server.cc, which serves the
// workers' requests; both are methods of the one class under its lock.
#include <chrono>

#include "kv/kv_message.h"
#include "kv/repl_codec.h"
#include "kv/request_check.h"
#include "kv/server.h"

namespace distopt {

// ---- replication ----

bool KvServer::Replicated(const TableReplica& t) const {
  return parts_[t.partition]->stream().has_backup();
}

uint64_t KvServer::Replicate(TableReplica& t, int64_t clock, bool sparse, Buffer keys,
                             Buffer values, int64_t bsp_clock, uint32_t worker) {
  ReplicationStream& stream = parts_[t.partition]->stream();
  const uint64_t seq = stream.Next();
  if (!stream.has_backup()) return 0;
  ByteWriter w;
  WriteKvHeader(w,
                {.table = t.spec.id, .partition = t.partition, .clock = clock, .sparse = sparse});
  WriteReplHeader(w, {ReplKind::kUpdate, seq, generation_, worker});
  Message m = Outgoing(MsgType::kReplicate, seq);  // payload buffers shared, not copied
  m.body = Buffer::FromVector(w.Take());
  m.keys = std::move(keys);
  m.values = std::move(values);
  ++stats_.replicated;
  stream.Send(seq, std::move(m), t.spec.id, bsp_clock, options_.env->Now());
  return seq;
}

void KvServer::SendSnapshot(PartitionReplica& part) {
  ReplicationStream& stream = part.stream();
  std::vector<TableClocks> clocks;
  for (const TableReplica& t : part.tables()) {
    clocks.push_back({t.gate.applied(), t.gate.worker_clocks()});
  }
  ByteWriter w;
  WriteKvHeader(w, {.partition = part.id()});
  WriteReplHeader(w, {ReplKind::kSnapshot, stream.seq(), generation_, kNoServer});
  std::vector<uint64_t> words;  // keys, then row steps (SnapshotFrames)
  std::vector<float> values;
  EncodeSnapshot(clocks, part.Snapshot(0), w, &words, &values);
  Message m = Outgoing(MsgType::kReplicate, stream.seq());
  m.body = Buffer::FromVector(w.Take());
  m.keys = Buffer::FromVector(std::move(words));
  m.values = Buffer::FromVector(std::move(values));
  log_.Info("sending partition ", part.id(), " to its new backup server/", stream.backup_rank(),
            " (", m.ByteSize() >> 10, " KiB at update ", stream.seq(), ")");
  ++stats_.snapshots_sent;
  stream.Send(stream.seq(), std::move(m), 0, -1, options_.env->Now());
}

void KvServer::HandleReplicate(Message&& m, const KvHeader& head) {
  const NodeId from = m.sender;
  if (head.partition >= parts_.size() || head.table >= options_.tables.size()) {
    return Reject(from, m, head,
                  InvalidArgumentError("replication of an unknown partition or table"));
  }
  ByteReader r = KvBodyRest(m);
  ReplHeader h;
  if (Status s = ReadReplHeader(r, &h); !s.ok()) return Reject(from, m, head, s);
  PartitionReplica* part = parts_[head.partition].get();
  if (part == nullptr || part->owner() || from != part->owner_node() ||
      h.generation != generation_) {
    // Not (yet) this server's view of who owns what; the owner re-sends.
    log_.Debug("ignored a replication of partition ", head.partition, " from node ", from);
    return;
  }
  if (h.kind == ReplKind::kSnapshot) return InstallSnapshot(*part, m, r, h.seq);
  const uint64_t applied = part->stream().seq();
  if (!part->synced()) return;  // the snapshot comes first (it is re-sent)
  if (h.seq != applied + 1) {
    // A re-send of an applied update, or a gap: the owner re-sends from the ack.
    return SendReplicateAck(*part, from, applied);
  }
  ApplyReplicated(*part, m, head, h.worker, h.seq);
}

void KvServer::InstallSnapshot(PartitionReplica& part, const Message& m, ByteReader& body,
                               uint64_t seq) {
  if (part.synced() && seq <= part.stream().seq()) {  // a re-send
    return SendReplicateAck(part, m.sender, part.stream().seq());
  }
  std::vector<TableClocks> clocks;
  std::vector<ShardSnapshot> shards;
  Result<SnapshotFrames> frames = SnapshotFramesOf(m.keys.as<uint64_t>(), m.values.as<float>());
  Status s = frames.status();
  if (s.ok()) s = DecodeSnapshot(body, *frames, part.num_tables(), num_workers_, &clocks, &shards);
  if (s.ok()) s = part.Install(std::move(shards));
  if (!s.ok()) {
    return Reject(m.sender, m, {.partition = part.id()},
                  s.WithContext("snapshot of partition " + std::to_string(part.id())));
  }
  for (size_t i = 0; i < part.num_tables(); ++i) {
    part.table(i).gate.Install(clocks[i].applied, std::move(clocks[i].workers));
  }
  part.stream().Reset(seq);
  part.set_synced(true);
  ++stats_.snapshots_installed;
  log_.Info("partition ", part.id(), " in sync with its owner (update ", seq, ")");
  SendReplicateAck(part, m.sender, seq);
  // The coordinator may now count this copy for a failover (kv/node.cc
  // decodes the partition id).
  ByteWriter w;
  w.U32(part.id());
  Message synced = Outgoing(MsgType::kReplicaSynced);
  synced.body = Buffer::FromVector(w.Take());
  transport_->Send(kCoordinatorId, std::move(synced)).IgnoreError();
}

void KvServer::ApplyReplicated(PartitionReplica& part, const Message& m, const KvHeader& head,
                               uint32_t worker, uint64_t seq) {
  TableReplica& t = part.table(head.table);
  const bool bsp = t.gate.bsp();
  if (!bsp && worker >= t.gate.worker_clocks().size()) {
    return Reject(m.sender, m, head, InvalidArgumentError("replicated update of unknown worker"));
  }
  if (Status s = CheckPayload(t, layout_, head, m, true); !s.ok()) {
    return Reject(m.sender, m, head, s);
  }
  ++stats_.updates;
  t.Apply(m.keys.as<uint64_t>(), m.values.as<float>().data());
  if (bsp) {
    t.gate.SetApplied(head.clock + 1);
  } else {
    t.gate.Saw(worker, head.clock);
  }
  part.stream().Reset(seq);
  ++stats_.replica_applied;
  SendReplicateAck(part, m.sender, seq);
}

void KvServer::SendReplicateAck(const PartitionReplica& part, NodeId to, uint64_t seq) {
  ByteWriter w;
  w.Reserve(kKvHeaderSize + sizeof(seq));
  WriteKvHeader(w, {.partition = part.id()});
  w.U64(seq);
  Message m = Outgoing(MsgType::kReplicateAck);
  m.body = Buffer::FromVector(w.Take());
  transport_->Send(to, std::move(m)).IgnoreError();
}

void KvServer::HandleReplicateAck(const Message& m, const KvHeader& head) {
  // An ack of the stream before a rollback counts updates of that stream,
  // not of the new one (which restarts its sequence numbers).
  if (m.epoch < rollback_epoch_ || head.partition >= parts_.size()) return;
  PartitionReplica* part = parts_[head.partition].get();
  if (part == nullptr || !part->owner() || m.sender != part->stream().backup_node()) {
    return;  // a former backup's
  }
  ByteReader r = KvBodyRest(m);
  uint64_t seq = 0;
  if (!r.U64(&seq).ok()) return;
  ReplicationStream& stream = part->stream();
  const auto now = options_.env->Now();
  if (stream.in_flight() > 0 && seq < stream.first_unconfirmed()) {
    // No progress while updates are out: the backup saw a gap (a lost
    // update). Go back to the first unconfirmed one now rather than at the
    // next retry tick, at most once per round trip's worth of time.
    if (stream.GoBackDue(seq, now, kFastResendGap)) stream.Resend(epoch_, now);
    return;
  }
  Confirmed(*part, stream.Confirm(seq));
}

void KvServer::Confirmed(PartitionReplica& part,
                         const std::vector<std::pair<uint32_t, int64_t>>& done) {
  if (done.empty()) return;
  for (const auto& [table, clock] : done) {
    if (table == ReplicationStream::kAllTables) {
      for (TableReplica& t : part.tables()) t.gate.ConfirmAll();
    } else if (table < part.num_tables()) {
      part.table(table).gate.ConfirmUpTo(clock);
    }
  }
  ServeParked(part);
}

}  // namespace distopt
