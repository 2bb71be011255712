// Queue files: one message with its envelope, in typed length-prefixed records.
// The format, the folders and the durability rules are in docs/queue.md; in short:
//
//   record  = type:1 length:4 data          length = bytes of data, unsigned big-endian
//   file    = VERSION SIZE TIME FROM [ENVID] [RET] *(ATTR / RCPT / DONE)
//             CONTENT *(ATTR / RCPT / DONE) END
//
// A file is complete only when it ends with END *and* has its owner-execute bit;
// QueueFileWriter sets both in commit() before the file gets its queue-ID name.
// A recipient is delivered (or bounced) by flipping its record's type byte from
// RCPT to DONE in place, so a partly delivered message never repeats one.
//
// The reader trusts nothing: a truncated file, an unknown record type, a length
// past the end or over the limits, a missing END are error values, never a crash,
// and nothing is allocated before its size has been checked.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/fd.h"
#include "util/result.h"

namespace postern {

// Record types.  ASCII letters so that a hex dump of a queue file can be read.
enum class RecordType : uint8_t {
  kVersion = 'V',    // u32 format version (kQueueFileVersion)
  kSize = 'S',       // u64 content offset, u64 content size, u64 body offset, u32 recipients
  kTime = 'T',       // u64 seconds, u32 microseconds: when the message arrived
  kFrom = 'F',       // envelope sender; empty for the null sender <>
  kEnvid = 'E',      // DSN ENVID (RFC 3461), decoded from xtext
  kRet = 'M',        // DSN RET: one byte, 'F' (FULL) or 'H' (HDRS)
  kAttr = 'A',       // name NUL value
  kRcpt = 'R',       // a recipient still to be delivered: notify:1 orcpt-length:2 orcpt address
  kDone = 'D',       // the same recipient once delivered or bounced (type byte flipped in place)
  kContent = 'C',    // the message: header, empty line, body; lines end in LF
  kEnd = 'Z',        // no data; the last record
};

inline constexpr uint32_t kQueueFileVersion = 1;
inline constexpr size_t kRecordHeaderSize = 5;
// Every record but CONTENT (which is bounded by its 32-bit length and by the file).
inline constexpr size_t kMaxRecordLength = 64 * 1024;
inline constexpr size_t kMaxAttributeName = 64;
inline constexpr size_t kSizeRecordLength = 28;

// DSN NOTIFY (RFC 3461) as bits; 0 means the client did not say.  NEVER stands alone.
enum DsnNotify : uint8_t {
  kNotifyNever = 1,
  kNotifySuccess = 2,
  kNotifyFailure = 4,
  kNotifyDelay = 8,
};
inline constexpr uint8_t kNotifyMask = 0x0f;

// DSN RET (RFC 3461): how much of the message a failure report returns.
enum class DsnRet : uint8_t { kUnspecified = 0, kFull = 'F', kHeaders = 'H' };

// Names of the attributes the daemons write; a reader keeps unknown names too.
namespace attr {
inline constexpr std::string_view kClientAddress = "client_address";
inline constexpr std::string_view kClientName = "client_name";
inline constexpr std::string_view kReverseClientName = "reverse_client_name";
inline constexpr std::string_view kHeloName = "helo_name";
inline constexpr std::string_view kProtocol = "protocol_name";
inline constexpr std::string_view kSaslMethod = "sasl_method";
inline constexpr std::string_view kSaslUsername = "sasl_username";
inline constexpr std::string_view kBodyType = "body_type";  // 7BIT, 8BITMIME
inline constexpr std::string_view kSmtputf8 = "smtputf8";
inline constexpr std::string_view kLogIdent = "log_ident";  // the queue ID of the message this came from
}  // namespace attr

struct QueueRecipient {
  std::string address;
  std::string orcpt;    // DSN ORCPT as "addr-type;address" with the xtext decoded; empty if not given
  uint8_t notify = 0;   // DsnNotify bits
  bool done = false;
  uint64_t offset = 0;  // file offset of the record: the argument of mark_recipient_done
};

struct QueueEnvelope {
  int64_t arrival_seconds = 0;
  int32_t arrival_microseconds = 0;
  std::string sender;
  std::string envid;
  DsnRet ret = DsnRet::kUnspecified;
  std::vector<std::pair<std::string, std::string>> attributes;  // in file order
  std::vector<QueueRecipient> recipients;                       // in file order
  uint64_t content_offset = 0;  // file offset of the first byte of the message
  uint64_t content_size = 0;    // bytes of the message
  uint64_t body_offset = 0;     // file offset of the body (content end when there is none)

  // The value of the first attribute of that name, or empty.
  std::string attribute(std::string_view name) const;
  size_t undone_count() const;
};

// The folders that hold queue files, under queue_directory.
enum class QueueName { kMaildrop, kIncoming, kActive, kDeferred, kHold, kCorrupt };
inline constexpr QueueName kAllQueues[] = {QueueName::kMaildrop, QueueName::kIncoming, QueueName::kActive,
                                           QueueName::kDeferred, QueueName::kHold,     QueueName::kCorrupt};
std::string_view queue_folder(QueueName queue);
// "spool/incoming/ID".  Panics on an invalid ID: callers validate what users type first.
std::string queue_file_path(const std::string& spool, QueueName queue, std::string_view queue_id);

// Why a queue file could not be read.
enum class QueueFileStatus {
  kOk,
  kMissing,     // no such file (another process moved or removed it: not an error)
  kIncomplete,  // no owner-execute bit, no END, or cut short: a writer never finished
  kCorrupt,     // unknown record type, bad length, bad data: quarantine it
  kIoError,     // the system failed (permissions, EIO): try again later
};
const char* status_name(QueueFileStatus status);

class QueueFile {
 public:
  // Opens and validates the whole envelope (the content is checked for length
  // only).  flags: O_RDONLY, or O_RDWR for an agent that will mark recipients.
  // status, when given, says why it failed (or kOk).
  static Result<QueueFile> open(const std::string& path, int flags = 0, QueueFileStatus* status = nullptr);
  // The same checks on a file that is already open (postdrop reads one from its
  // standard input); name stands for its path in messages and as its queue_id().
  static Result<QueueFile> from_fd(UniqueFd fd, const std::string& name, QueueFileStatus* status = nullptr);

  const std::string& path() const { return path_; }
  const std::string& queue_id() const { return queue_id_; }  // the file's name
  const QueueEnvelope& envelope() const { return envelope_; }
  int fd() const { return fd_.get(); }

  // Reads up to size bytes of the message from pos (0 = its first byte); returns
  // the count, 0 at the end.  Throws SystemError when the system fails.
  size_t read_content(uint64_t pos, char* buf, size_t size) const;
  // The whole message, for tests and small tools (a delivery agent reads in pieces).
  std::string content() const;
  std::string header() const;  // up to and including the empty line
  std::string body() const;

 private:
  QueueFile() = default;
  std::string path_;
  std::string queue_id_;
  UniqueFd fd_;
  QueueEnvelope envelope_;
};

// Marks the recipient whose RCPT record starts at offset as done by rewriting
// that record's one type byte (fd open O_RDWR).  Marking a DONE record again is
// harmless; an offset that holds no recipient record is an error and writes nothing.
// Not fsynced by default (docs/design.md, the fsync budget): the byte is in the
// page cache as soon as pwrite returns, so the crash of any process, the agent's
// included, cannot lose it; only a kernel crash or a power failure can, and then
// the worst case is one more delivery of that recipient, which Maildir delivery
// recognises by its file name.  An agent whose deliveries cannot be recognised
// (smtp, pipe, mbox) passes sync=true: fdatasync, one data block and no journal
// commit since the size does not change; with several recipients of one delivery,
// only the last mark needs it.
Result<void> mark_recipient_done(int fd, uint64_t offset, bool sync = false);

// Writes a new queue file.  The file is created in folder (e.g. SPOOL/incoming)
// under a temporary name that is never a queue ID ("tmp.PID.N"), mode 0600 (or
// the mode given; maildrop files are 0644 so that pickup can read them).  Its
// queue ID is made at once from the creation time and the file's inode.
// commit() writes END, adds u+x, fsyncs the file, renames it to its queue ID
// (in folder, or another folder of the same spool), and fsyncs that folder: when
// it returns, the message is safe and may be acknowledged.  A writer destroyed
// without commit() removes its file.
//
// Order: the single-valued setters (time, sender, envid, ret) come before the
// first content; recipients and attributes may come before or after the content
// (cleanup adds recipients it extracts from headers after the content).
// Calling them out of order is a bug and throws std::logic_error.
// Failures of the system (disk full) throw SystemError.
class QueueFileWriter {
 public:
  explicit QueueFileWriter(std::string folder, mode_t mode = 0600);
  // With a queue ID given rather than made (a valid one, or std::invalid_argument):
  // cleanup gives a message from maildrop the ID of its maildrop file, so that a
  // second submission of the same file is recognised (lib/mail/cleanup.h).
  QueueFileWriter(std::string folder, mode_t mode, std::string_view queue_id);
  ~QueueFileWriter();
  QueueFileWriter(const QueueFileWriter&) = delete;
  QueueFileWriter& operator=(const QueueFileWriter&) = delete;

  const std::string& queue_id() const { return queue_id_; }
  const std::string& temp_path() const { return temp_path_; }
  // The arrival time; the creation time unless set (pickup keeps the time of submission).
  void set_arrival_time(int64_t seconds, int32_t microseconds);
  void set_sender(std::string_view sender);
  void set_envid(std::string_view envid);
  void set_ret(DsnRet ret);
  void add_attribute(std::string_view name, std::string_view value);
  void add_recipient(std::string_view address, std::string_view orcpt = {}, uint8_t notify = 0);
  // Appends message text; call as often as needed.  The body starts after the
  // first empty line.
  void write_content(std::string_view text);
  uint64_t content_size() const { return content_size_; }

  // Returns the final path.  Needs a sender, at least one recipient.
  // FolderSync::kLater leaves the fsync of the folder to the caller, who commits a
  // batch and then calls sync_folder() once before acknowledging any of them
  // (group commit); until then a power failure may undo the rename.
  enum class FolderSync { kNow, kLater };
  std::string commit();
  std::string commit(const std::string& target_folder, FolderSync sync = FolderSync::kNow);
  // Completes the file as commit() does (END, SIZE, u+x) but neither syncs nor
  // renames it: returns a descriptor that reads it from its start, for a file
  // handed to another process (sendmail to postdrop).  The temporary name is
  // removed when the writer is destroyed; the descriptor keeps the data.
  UniqueFd finish_unnamed();

 private:
  void complete();
  void put_record(RecordType type, std::string_view data);
  void begin_content();
  void flush();
  void require_head(const char* what) const;

  std::string folder_;
  std::string temp_path_;
  std::string queue_id_;
  mode_t mode_;
  UniqueFd fd_;
  bool committed_ = false;
  bool completed_ = false;  // END written, sizes fixed (commit or finish_unnamed)
  int64_t seconds_ = 0;
  int32_t microseconds_ = 0;
  bool have_sender_ = false;
  std::string sender_;
  std::string envid_;
  DsnRet ret_ = DsnRet::kUnspecified;
  std::string body_records_;  // attributes and recipients given before the head was written
  std::string buffer_;        // records not yet written
  uint64_t written_ = 0;      // bytes in the file
  bool content_started_ = false;
  bool content_ended_ = false;
  uint64_t content_offset_ = 0;  // of the data of the CONTENT record
  uint64_t content_size_ = 0;
  uint64_t body_offset_ = 0;     // 0 until found
  bool at_line_start_ = true;
  uint32_t recipients_ = 0;
};

// fsync of a queue folder: makes the renames into it durable.  Throws SystemError.
void sync_folder(const std::string& folder);

// Moves a queue file from one folder to another by rename(2), the only way a
// message changes state.  The queue ID is checked with is_valid_queue_id first,
// so an ID a user typed can never name a file outside the spool.  An existing
// file of that ID in the target is never replaced.  durable fsyncs the target
// folder (postsuper -h/-H, where an undone move would be noticed); the queue
// manager's moves need not be (docs/queue.md says why).
Result<void> move_queue_file(const std::string& spool, std::string_view queue_id, QueueName from, QueueName to,
                             bool durable = false);

}  // namespace postern
