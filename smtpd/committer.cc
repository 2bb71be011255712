// The group-commit writer thread (committer.h).
#include "committer.h"

#include <fcntl.h>
#include <unistd.h>

#include <utility>

#include "util/error.h"
#include "util/log.h"
#include "util/socket.h"

namespace postern {

GroupCommitter::GroupCommitter(EventLoop& loop, std::string folder, DoneHandler on_done)
    : folder_(std::move(folder)), on_done_(std::move(on_done)) {
  int fds[2];
  check_sys(::pipe2(fds, O_CLOEXEC | O_NONBLOCK), "pipe2");
  wake_read_ = UniqueFd(fds[0]);
  wake_write_ = UniqueFd(fds[1]);
  watcher_ = std::make_unique<IoWatcher>(loop, wake_read_.get(), IoWatcher::kReadable, [this](int) { collect(); });
  thread_ = std::thread([this] { work(); });
}

GroupCommitter::~GroupCommitter() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  ready_.notify_one();
  thread_.join();
}

void GroupCommitter::submit(uint64_t ticket, std::unique_ptr<QueueFileWriter> writer) {
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(Job{ticket, std::move(writer)});
  }
  ready_.notify_one();
}

void GroupCommitter::work() {
  for (;;) {
    std::vector<Job> batch;
    {
      std::unique_lock lock(mutex_);
      ready_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, and nothing left to commit
      batch.swap(jobs_);
    }
    std::vector<Result> done;
    bool any_renamed = false;
    ++batches_;
    for (Job& job : batch) {
      Result r{job.ticket, job.writer->queue_id(), "", batches_, batch.size()};
      try {
        job.writer->commit(folder_, QueueFileWriter::FolderSync::kLater);
        any_renamed = true;
      } catch (const SystemError& e) {
        r.error = e.what();
      }
      job.writer.reset();  // a failed writer removes its file
      done.push_back(std::move(r));
    }
    if (any_renamed) {
      try {
        sync_folder(folder_);
      } catch (const SystemError& e) {
        // The files are in incoming but may not survive a power failure: the
        // client is told to try again, and a duplicate is better than a loss.
        for (Result& r : done)
          if (r.error.empty()) r.error = e.what();
      }
    }
    {
      std::lock_guard lock(mutex_);
      for (Result& r : done) results_.push_back(std::move(r));
    }
    char byte = 1;
    if (::write(wake_write_.get(), &byte, 1) < 0 && errno != EAGAIN) log_warn("commit wake-up: %m");
  }
}

void GroupCommitter::collect() {
  char buf[256];
  while (::read(wake_read_.get(), buf, sizeof buf) > 0) {
  }
  std::vector<Result> ready;
  {
    std::lock_guard lock(mutex_);
    ready.swap(results_);
  }
  for (const Result& r : ready) {
    if (r.batch != logged_batch_) {
      logged_batch_ = r.batch;
      log_debug("group commit: %zu queue files, one fsync of %s", r.batch_size, folder_.c_str());
    }
    on_done_(r);
  }
}

}  // namespace postern
