// Queue files: the writer, the validating reader, the in-place recipient mark
// and the moves between queues.  The format is described in queue_file.h and
// docs/queue.md.
#include "mail/queue_file.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "mail/queue_id.h"
#include "util/error.h"
#include "util/file.h"
#include "util/strings.h"

namespace postern {

namespace {

constexpr size_t kFlushSize = 64 * 1024;
constexpr std::string_view kTempPrefix = "tmp.";
// VERSION record, then the SIZE record's data starts after its header.
constexpr uint64_t kSizeDataOffset = kRecordHeaderSize + 4 + kRecordHeaderSize;

void put_u16(std::string& out, uint16_t v) {
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v & 0xff);
}
void put_u32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}
void put_u64(std::string& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}
uint64_t get_be(std::string_view data, size_t pos, size_t width) {
  uint64_t v = 0;
  for (size_t i = 0; i < width; ++i) v = (v << 8) | static_cast<unsigned char>(data[pos + i]);
  return v;
}

std::string record(RecordType type, std::string_view data) {
  std::string out;
  out.reserve(kRecordHeaderSize + data.size());
  out += static_cast<char>(type);
  put_u32(out, static_cast<uint32_t>(data.size()));
  out.append(data);
  return out;
}

bool known_type(uint8_t t) {
  switch (static_cast<RecordType>(t)) {
    case RecordType::kVersion: case RecordType::kSize: case RecordType::kTime: case RecordType::kFrom:
    case RecordType::kEnvid: case RecordType::kRet: case RecordType::kAttr: case RecordType::kRcpt:
    case RecordType::kDone: case RecordType::kContent: case RecordType::kEnd:
      return true;
  }
  return false;
}

bool valid_notify(uint8_t notify) {
  if (notify & ~kNotifyMask) return false;
  return !((notify & kNotifyNever) && (notify & ~kNotifyNever));
}

bool valid_attribute_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxAttributeName) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

// pread until n bytes or end of file; returns the count.  Throws on failure.
size_t pread_full(int fd, char* buf, size_t n, uint64_t offset) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = retry_eintr([&] { return ::pread(fd, buf + got, n - got, static_cast<off_t>(offset + got)); });
    if (r < 0) throw SystemError(errno, "read queue file");
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

void pwrite_full(int fd, std::string_view data, uint64_t offset, const std::string& what) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t r = retry_eintr(
        [&] { return ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done)); });
    if (r < 0) throw SystemError(errno, "write " + what);
    done += static_cast<size_t>(r);
  }
}

// Reads a file through a window, so that an envelope of many small records costs
// few system calls.  Every read is bounded by the file size known at open.
class WindowReader {
 public:
  WindowReader(int fd, uint64_t size) : fd_(fd), size_(size) {}
  // False when the file ends first.
  bool read(uint64_t offset, size_t n, std::string& out) {
    if (offset > size_ || n > size_ - offset) return false;
    if (offset < start_ || offset + n > start_ + window_.size()) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(std::max(n, kFlushSize), size_ - offset));
      window_.resize(want);
      size_t got = pread_full(fd_, window_.data(), want, offset);
      window_.resize(got);
      start_ = offset;
      if (got < n) return false;  // the file shrank under us
    }
    out.assign(window_, static_cast<size_t>(offset - start_), n);
    return true;
  }

 private:
  int fd_;
  uint64_t size_;
  uint64_t start_ = 0;
  std::string window_;
};

}  // namespace

std::string QueueEnvelope::attribute(std::string_view name) const {
  for (const auto& [n, v] : attributes)
    if (n == name) return v;
  return {};
}

size_t QueueEnvelope::undone_count() const {
  size_t n = 0;
  for (const auto& r : recipients) n += r.done ? 0 : 1;
  return n;
}

std::string_view queue_folder(QueueName queue) {
  switch (queue) {
    case QueueName::kMaildrop: return "maildrop";
    case QueueName::kIncoming: return "incoming";
    case QueueName::kActive: return "active";
    case QueueName::kDeferred: return "deferred";
    case QueueName::kHold: return "hold";
    case QueueName::kCorrupt: return "corrupt";
  }
  log_panic("queue_folder: bad queue %d", static_cast<int>(queue));
}

std::string queue_file_path(const std::string& spool, QueueName queue, std::string_view queue_id) {
  if (!is_valid_queue_id(queue_id)) log_panic("queue_file_path: invalid queue ID");
  return spool + "/" + std::string(queue_folder(queue)) + "/" + std::string(queue_id);
}

const char* status_name(QueueFileStatus status) {
  switch (status) {
    case QueueFileStatus::kOk: return "ok";
    case QueueFileStatus::kMissing: return "missing";
    case QueueFileStatus::kIncomplete: return "incomplete";
    case QueueFileStatus::kCorrupt: return "corrupt";
    case QueueFileStatus::kIoError: return "I/O error";
  }
  return "?";
}

// ---------------------------------------------------------------- reader

Result<QueueFile> QueueFile::open(const std::string& path, int flags, QueueFileStatus* status) {
  QueueFileStatus ignored;
  QueueFileStatus& why = status ? *status : ignored;
  auto problem = [&](QueueFileStatus s, const std::string& text) {
    why = s;
    return fail(path + ": " + text);
  };

  // O_NONBLOCK: a FIFO planted in a queue folder must not hang the reader.
  int fd = retry_eintr(
      [&] { return ::open(path.c_str(), (flags & O_ACCMODE) | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK); });
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return problem(QueueFileStatus::kMissing, "no such file");
    if (err == ELOOP) return problem(QueueFileStatus::kCorrupt, "is a symbolic link");
    return problem(QueueFileStatus::kIoError, std::strerror(err));
  }
  return from_fd(UniqueFd(fd), path, status);
}

Result<QueueFile> QueueFile::from_fd(UniqueFd fd_in, const std::string& path, QueueFileStatus* status) {
  QueueFileStatus ignored;
  QueueFileStatus& why = status ? *status : ignored;
  auto problem = [&](QueueFileStatus s, const std::string& text) {
    why = s;
    return fail(path + ": " + text);
  };
  QueueFile qf;
  qf.path_ = path;
  qf.queue_id_ = basename_of(path);
  int fd = fd_in.get();
  qf.fd_ = std::move(fd_in);
  struct stat st;
  if (::fstat(fd, &st) < 0) return problem(QueueFileStatus::kIoError, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return problem(QueueFileStatus::kCorrupt, "not a regular file");
  if (!(st.st_mode & S_IXUSR)) return problem(QueueFileStatus::kIncomplete, "no owner-execute bit");

  const uint64_t size = static_cast<uint64_t>(st.st_size);
  WindowReader in(fd, size);
  QueueEnvelope& env = qf.envelope_;
  std::string head, data, size_data;
  uint64_t pos = 0;
  size_t index = 0;
  bool seen_time = false, seen_from = false, seen_envid = false, seen_ret = false, seen_content = false;
  try {
    for (;; ++index) {
      std::string where = format("record %zu at offset %llu", index, static_cast<unsigned long long>(pos));
      if (pos == size) return problem(QueueFileStatus::kIncomplete, "no END record");
      if (!in.read(pos, kRecordHeaderSize, head))
        return problem(QueueFileStatus::kIncomplete, where + ": cut short");
      uint8_t type = static_cast<uint8_t>(head[0]);
      uint64_t length = get_be(head, 1, 4);
      if (!known_type(type))
        return problem(QueueFileStatus::kCorrupt, format("%s: unknown record type 0x%02x", where.c_str(), type));
      RecordType rt = static_cast<RecordType>(type);
      if (rt != RecordType::kContent && length > kMaxRecordLength)
        return problem(QueueFileStatus::kCorrupt, where + ": record too long");
      uint64_t data_offset = pos + kRecordHeaderSize;
      if (length > size - data_offset) return problem(QueueFileStatus::kIncomplete, where + ": cut short");
      if (rt != RecordType::kContent && !in.read(data_offset, static_cast<size_t>(length), data))
        return problem(QueueFileStatus::kIncomplete, where + ": cut short");
      auto bad = [&](const char* what) { return problem(QueueFileStatus::kCorrupt, where + ": " + what); };

      // VERSION first, SIZE second, nothing else there.
      if ((index == 0) != (rt == RecordType::kVersion)) return bad("VERSION must be the first record");
      if ((index == 1) != (rt == RecordType::kSize)) return bad("SIZE must be the second record");
      bool head_record = rt == RecordType::kTime || rt == RecordType::kFrom || rt == RecordType::kEnvid ||
                         rt == RecordType::kRet;
      if (head_record && seen_content) return bad("envelope record after the content");

      switch (rt) {
        case RecordType::kVersion:
          if (data.size() != 4) return bad("bad VERSION length");
          if (get_be(data, 0, 4) != kQueueFileVersion) return bad("unsupported format version");
          break;
        case RecordType::kSize:
          if (data.size() != kSizeRecordLength) return bad("bad SIZE length");
          size_data = data;
          break;
        case RecordType::kTime: {
          if (seen_time) return bad("second TIME");
          if (data.size() != 12) return bad("bad TIME length");
          uint64_t seconds = get_be(data, 0, 8), micros = get_be(data, 8, 4);
          if (seconds > static_cast<uint64_t>(INT64_MAX) || micros > 999999) return bad("bad TIME value");
          env.arrival_seconds = static_cast<int64_t>(seconds);
          env.arrival_microseconds = static_cast<int32_t>(micros);
          seen_time = true;
          break;
        }
        case RecordType::kFrom:
          if (seen_from) return bad("second FROM");
          env.sender = data;
          seen_from = true;
          break;
        case RecordType::kEnvid:
          if (seen_envid) return bad("second ENVID");
          env.envid = data;
          seen_envid = true;
          break;
        case RecordType::kRet:
          if (seen_ret) return bad("second RET");
          if (data.size() != 1 || (data[0] != 'F' && data[0] != 'H')) return bad("bad RET");
          env.ret = static_cast<DsnRet>(data[0]);
          seen_ret = true;
          break;
        case RecordType::kAttr: {
          size_t nul = data.find('\0');
          if (nul == std::string::npos || !valid_attribute_name(std::string_view(data).substr(0, nul)))
            return bad("bad attribute");
          env.attributes.emplace_back(data.substr(0, nul), data.substr(nul + 1));
          break;
        }
        case RecordType::kRcpt:
        case RecordType::kDone: {
          if (data.size() < 3) return bad("bad recipient length");
          uint8_t notify = static_cast<uint8_t>(data[0]);
          size_t orcpt_length = static_cast<size_t>(get_be(data, 1, 2));
          if (!valid_notify(notify)) return bad("bad NOTIFY flags");
          if (orcpt_length > data.size() - 3) return bad("bad ORCPT length");
          if (data.size() - 3 - orcpt_length == 0) return bad("empty recipient address");
          QueueRecipient r;
          r.notify = notify;
          r.orcpt = data.substr(3, orcpt_length);
          r.address = data.substr(3 + orcpt_length);
          r.done = rt == RecordType::kDone;
          r.offset = pos;
          env.recipients.push_back(std::move(r));
          break;
        }
        case RecordType::kContent:
          if (seen_content) return bad("second CONTENT");
          if (!seen_time || !seen_from) return bad("TIME or FROM missing before the content");
          env.content_offset = data_offset;
          env.content_size = length;
          seen_content = true;
          break;
        case RecordType::kEnd: {
          if (length != 0) return bad("END with data");
          if (data_offset != size) return bad("data after END");
          if (!seen_content) return bad("no CONTENT");
          if (env.recipients.empty()) return bad("no recipients");
          uint64_t content_offset = get_be(size_data, 0, 8), content_size = get_be(size_data, 8, 8);
          uint64_t body_offset = get_be(size_data, 16, 8), count = get_be(size_data, 24, 4);
          if (content_offset != env.content_offset || content_size != env.content_size)
            return bad("SIZE does not match the content");
          if (body_offset < content_offset || body_offset > content_offset + content_size)
            return bad("body offset outside the content");
          if (count != env.recipients.size()) return bad("SIZE does not match the recipients");
          env.body_offset = body_offset;
          why = QueueFileStatus::kOk;
          return qf;
        }
      }
      pos = data_offset + length;
    }
  } catch (const SystemError& e) {
    return problem(QueueFileStatus::kIoError, e.what());
  }
}

size_t QueueFile::read_content(uint64_t pos, char* buf, size_t size) const {
  if (pos >= envelope_.content_size) return 0;
  size_t n = static_cast<size_t>(std::min<uint64_t>(size, envelope_.content_size - pos));
  return pread_full(fd_.get(), buf, n, envelope_.content_offset + pos);
}

std::string QueueFile::content() const {
  std::string out(static_cast<size_t>(envelope_.content_size), '\0');
  out.resize(read_content(0, out.data(), out.size()));
  return out;
}

std::string QueueFile::header() const {
  return content().substr(0, static_cast<size_t>(envelope_.body_offset - envelope_.content_offset));
}

std::string QueueFile::body() const {
  return content().substr(static_cast<size_t>(envelope_.body_offset - envelope_.content_offset));
}

// ---------------------------------------------------------------- marking

Result<void> mark_recipient_done(int fd, uint64_t offset, bool sync) {
  char head[kRecordHeaderSize];
  size_t got;
  try {
    got = pread_full(fd, head, sizeof head, offset);
  } catch (const SystemError& e) {
    return fail(e.what());
  }
  if (got != sizeof head) return fail(format("no recipient record at offset %llu", (unsigned long long)offset));
  RecordType type = static_cast<RecordType>(head[0]);
  uint64_t length = get_be(std::string_view(head, sizeof head), 1, 4);
  if ((type != RecordType::kRcpt && type != RecordType::kDone) || length < 3 || length > kMaxRecordLength)
    return fail(format("no recipient record at offset %llu", (unsigned long long)offset));
  if (type == RecordType::kRcpt) {
    const char done = static_cast<char>(RecordType::kDone);
    ssize_t r = retry_eintr([&] { return ::pwrite(fd, &done, 1, static_cast<off_t>(offset)); });
    if (r != 1) return fail(std::string("mark recipient done: ") + std::strerror(r < 0 ? errno : EIO));
  }
  if (sync && retry_eintr([&] { return ::fdatasync(fd); }) < 0)
    return fail(std::string("mark recipient done: fdatasync: ") + std::strerror(errno));
  return {};
}

// ---------------------------------------------------------------- writer

QueueFileWriter::QueueFileWriter(std::string folder, mode_t mode, std::string_view queue_id)
    : QueueFileWriter(std::move(folder), mode) {
  if (!is_valid_queue_id(queue_id)) throw std::invalid_argument("invalid queue ID \"" + std::string(queue_id) + "\"");
  queue_id_ = queue_id;
}

QueueFileWriter::QueueFileWriter(std::string folder, mode_t mode) : folder_(std::move(folder)), mode_(mode) {
  static std::atomic<unsigned> counter{0};
  for (int attempt = 0;; ++attempt) {
    temp_path_ = folder_ + "/" + std::string(kTempPrefix) + std::to_string(::getpid()) + "." +
                 std::to_string(counter++);
    int fd = retry_eintr([&] {
      return ::open(temp_path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode_ & ~S_IXUSR);
    });
    if (fd >= 0) {
      fd_.reset(fd);
      break;
    }
    // A name left by a crashed process that had our pid: take the next one.
    if (errno != EEXIST || attempt >= 100) throw SystemError(errno, "create " + temp_path_);
  }
  try {
    // Never u+x before commit, whatever the umask or the caller's mode says.
    check_sys(::fchmod(fd_.get(), mode_ & ~S_IXUSR & 07777), "chmod " + temp_path_);
    struct timeval tv;
    ::gettimeofday(&tv, nullptr);
    struct stat st;
    check_sys(::fstat(fd_.get(), &st), "stat " + temp_path_);
    seconds_ = tv.tv_sec;
    microseconds_ = static_cast<int32_t>(tv.tv_usec);
    queue_id_ = make_queue_id(seconds_, microseconds_, st.st_ino);
  } catch (...) {
    ::unlink(temp_path_.c_str());
    throw;
  }
  std::string version;
  put_u32(version, kQueueFileVersion);
  buffer_ = record(RecordType::kVersion, version);
  buffer_ += record(RecordType::kSize, std::string(kSizeRecordLength, '\0'));  // filled in by commit()
}

QueueFileWriter::~QueueFileWriter() {
  if (!committed_) ::unlink(temp_path_.c_str());
}

void QueueFileWriter::require_head(const char* what) const {
  if (content_started_ || committed_) throw std::logic_error(std::string(what) + " after the content");
}

void QueueFileWriter::set_arrival_time(int64_t seconds, int32_t microseconds) {
  require_head("arrival time");
  if (seconds < 0 || microseconds < 0 || microseconds > 999999) throw std::invalid_argument("bad arrival time");
  seconds_ = seconds;
  microseconds_ = microseconds;
}

void QueueFileWriter::set_sender(std::string_view sender) {
  require_head("sender");
  if (sender.size() > kMaxRecordLength) throw std::length_error("sender too long");
  sender_ = sender;
  have_sender_ = true;
}

void QueueFileWriter::set_envid(std::string_view envid) {
  require_head("ENVID");
  if (envid.size() > kMaxRecordLength) throw std::length_error("ENVID too long");
  envid_ = envid;
}

void QueueFileWriter::set_ret(DsnRet ret) {
  require_head("RET");
  ret_ = ret;
}

void QueueFileWriter::put_record(RecordType type, std::string_view data) {
  if (committed_) throw std::logic_error("queue file already committed");
  if (data.size() > kMaxRecordLength) throw std::length_error("queue file record too long");
  if (content_started_) {
    content_ended_ = true;
    buffer_ += record(type, data);
    flush();
  } else {
    body_records_ += record(type, data);
  }
}

void QueueFileWriter::add_attribute(std::string_view name, std::string_view value) {
  if (!valid_attribute_name(name)) throw std::invalid_argument("bad attribute name");
  std::string data(name);
  data += '\0';
  data.append(value);
  put_record(RecordType::kAttr, data);
}

void QueueFileWriter::add_recipient(std::string_view address, std::string_view orcpt, uint8_t notify) {
  if (address.empty()) throw std::invalid_argument("empty recipient");
  if (!valid_notify(notify)) throw std::invalid_argument("bad NOTIFY flags");
  if (orcpt.size() > 0xffff) throw std::length_error("ORCPT too long");
  std::string data;
  data += static_cast<char>(notify);
  put_u16(data, static_cast<uint16_t>(orcpt.size()));
  data.append(orcpt);
  data.append(address);
  put_record(RecordType::kRcpt, data);
  ++recipients_;
}

void QueueFileWriter::begin_content() {
  std::string t;
  put_u64(t, static_cast<uint64_t>(seconds_));
  put_u32(t, static_cast<uint32_t>(microseconds_));
  buffer_ += record(RecordType::kTime, t);
  buffer_ += record(RecordType::kFrom, sender_);
  if (!envid_.empty()) buffer_ += record(RecordType::kEnvid, envid_);
  if (ret_ != DsnRet::kUnspecified) buffer_ += record(RecordType::kRet, std::string(1, static_cast<char>(ret_)));
  buffer_ += body_records_;
  body_records_.clear();
  buffer_ += record(RecordType::kContent, {});  // the length is filled in by commit()
  content_offset_ = written_ + buffer_.size();
  content_started_ = true;
}

void QueueFileWriter::write_content(std::string_view text) {
  if (committed_ || content_ended_) throw std::logic_error("content after the content ended");
  if (!have_sender_) throw std::logic_error("content before the sender");
  if (!content_started_) begin_content();
  if (text.size() > UINT32_MAX - content_size_) throw std::length_error("message too large for a queue file");
  if (body_offset_ == 0) {
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] != '\n') {
        at_line_start_ = false;
      } else if (at_line_start_) {
        body_offset_ = content_offset_ + content_size_ + i + 1;
        break;
      } else {
        at_line_start_ = true;
      }
    }
  }
  buffer_.append(text);
  content_size_ += text.size();
  if (buffer_.size() >= kFlushSize) flush();
}

void QueueFileWriter::flush() {
  if (buffer_.empty()) return;
  try {
    write_all(fd_.get(), buffer_);
  } catch (const SystemError& e) {
    throw SystemError(e.error(), "write " + temp_path_);
  }
  written_ += buffer_.size();
  buffer_.clear();
}

std::string QueueFileWriter::commit() { return commit(folder_); }

void QueueFileWriter::complete() {
  if (committed_ || completed_) throw std::logic_error("queue file already committed");
  completed_ = true;
  if (!have_sender_) throw std::logic_error("queue file without a sender");
  if (recipients_ == 0) throw std::logic_error("queue file without recipients");
  if (!content_started_) begin_content();
  content_ended_ = true;
  if (body_offset_ == 0) body_offset_ = content_offset_ + content_size_;
  buffer_ += record(RecordType::kEnd, {});
  flush();

  std::string length;
  put_u32(length, static_cast<uint32_t>(content_size_));
  pwrite_full(fd_.get(), length, content_offset_ - 4, temp_path_);
  std::string size;
  put_u64(size, content_offset_);
  put_u64(size, content_size_);
  put_u64(size, body_offset_);
  put_u32(size, recipients_);
  pwrite_full(fd_.get(), size, kSizeDataOffset, temp_path_);

  // u+x before the fsync, so that one fsync makes the data and the mode durable;
  // the temporary name keeps the file out of every queue until the rename.
  check_sys(::fchmod(fd_.get(), (mode_ | S_IXUSR) & 07777), "chmod " + temp_path_);
}

UniqueFd QueueFileWriter::finish_unnamed() {
  complete();
  UniqueFd reader = open_file(temp_path_, O_RDONLY);
  return reader;
}

std::string QueueFileWriter::commit(const std::string& target_folder, FolderSync sync) {
  complete();
  fsync_fd(fd_.get(), temp_path_);
  fd_.reset();
  std::string final_path = target_folder + "/" + queue_id_;
  if (int err = rename_noreplace(temp_path_, final_path))
    throw SystemError(err, "rename " + temp_path_ + " to " + final_path);
  committed_ = true;
  // Without this a power failure could leave the file under its temporary
  // name, which the startup scan removes: an acknowledged message lost.
  if (sync == FolderSync::kNow) sync_folder(target_folder);
  return final_path;
}

void sync_folder(const std::string& folder) {
  UniqueFd dir = open_file(folder, O_RDONLY | O_DIRECTORY);
  fsync_fd(dir.get(), folder);
}

// ---------------------------------------------------------------- moves

Result<void> move_queue_file(const std::string& spool, std::string_view queue_id, QueueName from, QueueName to,
                             bool durable) {
  if (!is_valid_queue_id(queue_id)) return fail("invalid queue ID");
  if (from == to) return fail("move to the same queue");
  std::string source = queue_file_path(spool, from, queue_id);
  std::string target = queue_file_path(spool, to, queue_id);
  std::string id(queue_id);
  if (int err = rename_noreplace(source, target)) {
    if (err == ENOENT) return fail(id + ": not in " + std::string(queue_folder(from)));
    if (err == EEXIST) return fail(id + ": already in " + std::string(queue_folder(to)));
    return fail(id + ": move to " + std::string(queue_folder(to)) + ": " + std::strerror(err));
  }
  if (durable) {
    try {
      sync_folder(dirname_of(target));
    } catch (const SystemError& e) {
      return fail(e.what());
    }
  }
  return {};
}

}  // namespace postern
