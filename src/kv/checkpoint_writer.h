// CheckpointWriter: writes a server's checkpoints on a thread of its own.
// The server copies a partition's state under its lock (a memcpy of the
// shards) and submits it; the files are written and fsynced here, and once
// every file of the partition is durable its report goes to the
// coordinator, which writes the manifest when all partitions reported. So a
// checkpoint never stops the server from answering requests. Jobs are
// written in the order submitted; at most `max_queued` wait (Submit blocks
// beyond that, so a disk slower than the checkpoint interval slows the job
// rather than filling memory; the log says so). Thread-safe.
//
//   CheckpointWriter writer(run_dir, transport, log);
//   writer.Submit({step, partition, generation, SnapshotOf(part), envelope});
//   writer.Flush();  // tests: everything submitted is on disk and reported
#ifndef DISTOPT_KV_CHECKPOINT_WRITER_H_
#define DISTOPT_KV_CHECKPOINT_WRITER_H_

#include <cstdint>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "base/env.h"
#include "base/logging.h"
#include "base/mutex.h"
#include "kv/checkpoint.h"
#include "transport/transport.h"

namespace distopt {

struct CheckpointJob {
  int64_t step = 0;
  uint32_t partition = 0;   // files are named by partition
  uint32_t generation = 0;  // the layout generation it belongs to
  std::vector<ShardSnapshot> shards;
  // The report's envelope (sender, epoch as of the snapshot); the writer
  // fills in type and body.
  Message report;
};

struct CheckpointWriterStats {
  uint64_t written = 0;  // partitions written and reported
  uint64_t failed = 0;   // write errors (logged; that checkpoint never completes)
  uint64_t dropped = 0;  // jobs of a rolled-back generation, never written
  uint64_t stalls = 0;   // Submit calls that had to wait for the disk
  double write_seconds_max = 0;
};

class CheckpointWriter {
 public:
  // Files go through `env` (a test's FaultyEnv makes writes and fsyncs fail).
  CheckpointWriter(std::string run_dir, Transport* transport, Logger log, size_t max_queued = 2,
                   Env* env = Env::Default());
  // Writes what is queued, then stops the thread.
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  void Submit(CheckpointJob job);
  // Drops queued jobs of generations before `generation` (the job rolled
  // back past them; one being written finishes, and its report carries its
  // old epoch).
  void DropBefore(uint32_t generation);
  // Returns once every job submitted so far is written (or failed).
  void Flush();
  CheckpointWriterStats stats() const;

 private:
  void Loop();
  Status Write(const CheckpointJob& job);

  const std::string run_dir_;
  Transport* const transport_;
  const Logger log_;
  const size_t max_queued_;
  Env* const env_;

  mutable Mutex mu_;
  CondVar changed_;  // signalled on every change of the fields below
  std::deque<CheckpointJob> queue_ GUARDED_BY(mu_);
  bool busy_ GUARDED_BY(mu_) = false;  // a job is being written
  bool stop_ GUARDED_BY(mu_) = false;
  CheckpointWriterStats stats_ GUARDED_BY(mu_);
  std::thread thread_;  // last: starts once everything above exists
};

}  // namespace distopt

#endif  // DISTOPT_KV_CHECKPOINT_WRITER_H_
