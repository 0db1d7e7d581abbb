#include "kv/checkpoint_writer.h"

#include <chrono>

namespace distopt {

CheckpointWriter::CheckpointWriter(std::string run_dir, Transport* transport, Logger log,
                                   size_t max_queued, Env* env)
    : run_dir_(std::move(run_dir)),
      transport_(transport),
      log_(std::move(log)),
      max_queued_(max_queued < 1 ? 1 : max_queued),
      env_(env),
      thread_([this] { Loop(); }) {}

CheckpointWriter::~CheckpointWriter() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  changed_.SignalAll();
  thread_.join();
}

void CheckpointWriter::Submit(CheckpointJob job) {
  MutexLock lock(&mu_);
  if (queue_.size() >= max_queued_) {
    ++stats_.stalls;
    log_.Warn("checkpoint ", job.step, " of partition ", job.partition, " waits for ",
              queue_.size(), " earlier checkpoint(s) still being written (the disk is slower ",
              "than train.checkpoint_every_steps)");
    while (queue_.size() >= max_queued_ && !stop_) changed_.Wait(&mu_);
  }
  queue_.push_back(std::move(job));
  changed_.SignalAll();
}

void CheckpointWriter::DropBefore(uint32_t generation) {
  MutexLock lock(&mu_);
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (it->generation < generation) {
      log_.Info("checkpoint ", it->step, " of partition ", it->partition,
                " dropped: the job rolled back past it");
      ++stats_.dropped;
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  changed_.SignalAll();
}

void CheckpointWriter::Flush() {
  MutexLock lock(&mu_);
  while (!queue_.empty() || busy_) changed_.Wait(&mu_);
}

CheckpointWriterStats CheckpointWriter::stats() const {
  MutexLock lock(&mu_);
  return stats_;
}

void CheckpointWriter::Loop() {
  MutexLock lock(&mu_);
  while (true) {
    while (queue_.empty() && !stop_) changed_.Wait(&mu_);
    if (queue_.empty()) return;  // stopping, and everything is written
    CheckpointJob job = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    changed_.SignalAll();  // a Submit may wait for room
    lock.Unlock();
    const SteadyTime start = env_->Now();
    Status s = Write(job);
    const double seconds = ToSeconds(env_->Now() - start);
    if (!s.ok()) {
      log_.Error("checkpoint ", job.step, " of partition ", job.partition,
                 " failed: ", s.message());
    }
    lock.Lock();
    busy_ = false;
    ++(s.ok() ? stats_.written : stats_.failed);
    stats_.write_seconds_max = std::max(stats_.write_seconds_max, seconds);
    changed_.SignalAll();
  }
}

Status CheckpointWriter::Write(const CheckpointJob& job) {
  const std::string dir = CheckpointDir(run_dir_, job.step);
  RETURN_IF_ERROR(env_->MakeDirs(dir));
  CheckpointReport report;
  report.step = job.step;
  report.server_rank = job.partition;
  for (const ShardSnapshot& snap : job.shards) {
    ManifestEntry entry;
    RETURN_IF_ERROR(WriteShard(dir, static_cast<int>(job.partition), snap, &entry, env_));
    report.files.push_back(entry);
  }
  Message m = job.report;
  m.type = MsgType::kCheckpoint;
  m.body = Buffer::FromVector(EncodeCheckpointReport(report));
  return transport_->Send(kCoordinatorId, std::move(m));
}

}  // namespace distopt
