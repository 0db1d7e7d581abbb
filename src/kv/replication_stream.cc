#include "kv/replication_stream.h"

#include <algorithm>

namespace distopt {

std::vector<std::pair<uint32_t, int64_t>> ReplicationStream::SetBackup(uint32_t rank, NodeId node) {
  auto released = Confirm(seq_);
  unconfirmed_.clear();
  backup_rank_ = rank;
  backup_node_ = node;
  return released;
}

void ReplicationStream::Reset(uint64_t seq) {
  seq_ = confirmed_ = seq;
  unconfirmed_.clear();
}

uint64_t ReplicationStream::Next() {
  ++seq_;
  if (!has_backup()) confirmed_ = seq_;
  return seq_;
}

void ReplicationStream::Send(uint64_t seq, Message m, uint32_t table, int64_t bsp_clock,
                             SteadyTime now) {
  Message copy = m;  // the payload buffers are shared, not copied
  unconfirmed_.push_back({seq, std::move(m), table, bsp_clock});
  last_send_ = now;
  transport_->Send(backup_node_, std::move(copy)).IgnoreError();
}

std::vector<std::pair<uint32_t, int64_t>> ReplicationStream::Confirm(uint64_t seq) {
  std::vector<std::pair<uint32_t, int64_t>> out;
  seq = std::min(seq, seq_);
  if (seq <= confirmed_ && unconfirmed_.empty()) return out;
  confirmed_ = std::max(confirmed_, seq);
  size_t done = 0;
  for (; done < unconfirmed_.size() && unconfirmed_[done].seq <= confirmed_; ++done) {
    const Entry& e = unconfirmed_[done];
    if (e.bsp_clock >= 0) out.emplace_back(e.table, e.bsp_clock);
  }
  unconfirmed_.erase(unconfirmed_.begin(), unconfirmed_.begin() + done);
  if (unconfirmed_.empty()) out.emplace_back(kAllTables, 0);
  return out;
}

bool ReplicationStream::GoBackDue(uint64_t acked, SteadyTime now, Duration gap) {
  // An ack of the first unconfirmed entry is progress, even where that
  // entry's number is already confirmed (a new backup's snapshot, sent at
  // the update the old one's release confirmed).
  if (unconfirmed_.empty() || acked >= unconfirmed_.front().seq) return false;
  if (now - last_go_back_ < gap) return false;
  last_go_back_ = now;
  return true;
}

bool ReplicationStream::RetryDue(SteadyTime now, Duration retry) const {
  return !unconfirmed_.empty() && has_backup() && now - last_send_ >= retry;
}

void ReplicationStream::Resend(uint32_t epoch, SteadyTime now) {
  last_send_ = now;
  for (const Entry& e : unconfirmed_) {
    Message copy = e.msg;
    copy.epoch = epoch;
    transport_->Send(backup_node_, std::move(copy)).IgnoreError();
  }
}

}  // namespace distopt
