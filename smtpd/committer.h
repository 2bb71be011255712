// Group commit for smtpd (docs/design.md, "The queue and the fsync budget"): the
// sessions of one process hand their finished queue files to one writer thread,
// which commits every file waiting (file fsync and rename, FolderSync::kLater),
// then fsyncs the incoming folder once for the whole batch, and only then reports
// each result back to the event loop.  While the thread is busy with one batch the
// next one gathers, so the more sessions finish DATA together, the fewer folder
// fsyncs each message costs; the event loop never waits for a disk flush.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mail/queue_file.h"
#include "util/event.h"
#include "util/fd.h"

namespace postern {

class GroupCommitter {
 public:
  struct Result {
    uint64_t ticket = 0;
    std::string queue_id;
    std::string error;  // empty: durable in incoming
    uint64_t batch = 0;       // which folder fsync it shared
    size_t batch_size = 0;    // with how many files
  };
  using DoneHandler = std::function<void(const Result&)>;

  GroupCommitter(EventLoop& loop, std::string folder, DoneHandler on_done);
  ~GroupCommitter();  // finishes what was handed over, then stops the thread
  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;

  // Commits the file; on_done(ticket, ...) runs on the loop once it is durable or failed.
  void submit(uint64_t ticket, std::unique_ptr<QueueFileWriter> writer);

 private:
  struct Job {
    uint64_t ticket;
    std::unique_ptr<QueueFileWriter> writer;
  };
  void work();
  void collect();

  std::string folder_;
  DoneHandler on_done_;
  UniqueFd wake_read_, wake_write_;  // the thread tells the loop that results are ready
  std::unique_ptr<IoWatcher> watcher_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::vector<Job> jobs_;
  std::vector<Result> results_;
  bool stopping_ = false;
  uint64_t batches_ = 0;         // the worker's count
  uint64_t logged_batch_ = 0;    // the loop's: the last batch it logged
  std::thread thread_;  // last: started when everything above exists
};

}  // namespace postern
