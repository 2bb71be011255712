// The spool tree under queue_directory: its folders with their owners and modes
// (docs/queue.md), listing the messages of one queue, and the startup scan that
// clears away what crashed writers left behind.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mail/queue_file.h"
#include "util/result.h"

namespace postern {

class Config;

// Who owns the spool: mail_owner (user and its group) and setgid_group, the group
// of the submission helper that writes to maildrop and talks to public/.
// Folders owned by root use root_uid/root_gid (0; tests use their own ids).
struct SpoolOwners {
  uid_t owner = 0;
  gid_t group = 0;
  gid_t setgid_group = 0;
  uid_t root_uid = 0;
  gid_t root_gid = 0;
};

// mail_owner and setgid_group of the configuration, looked up in the system's
// user and group databases.
Result<SpoolOwners> spool_owners(const Config& config);

struct SpoolFolder {
  std::string_view name;  // "" is queue_directory itself
  mode_t mode;
  enum class User { kRoot, kOwner } user;
  enum class Group { kRoot, kOwner, kSetgid } group;
};
// Every folder of the tree, queue_directory first.
extern const std::vector<SpoolFolder> kSpoolFolders;

// Creates what is missing and corrects the owner and mode of what is there (a
// symbolic link or a non-directory in place of a folder is an error).  Run by
// master, as root, before any daemon starts.  Throws SystemError.
void create_spool(const std::string& spool, const SpoolOwners& owners);
// What is wrong with the tree, one line per problem; empty when all is well.
std::vector<std::string> check_spool(const std::string& spool, const SpoolOwners& owners);

// The queue IDs in one queue, sorted (that is, by arrival time).  Temporary files
// and anything else that is not named by a queue ID are left out.  Throws SystemError.
std::vector<std::string> list_queue(const std::string& spool, QueueName queue);

struct SpoolScan {
  size_t complete = 0;                   // complete queue files left where they are
  std::vector<std::string> removed;      // "incoming/NAME": writers that never finished
  std::vector<std::string> recovered;    // "maildrop/ID": complete files whose rename was lost
  std::vector<std::string> quarantined;  // "deferred/ID": moved to corrupt
  std::vector<std::string> skipped;      // "hold/NAME: why": left alone (unknown names, errors)
};

// The startup scan (postsuper -s; master before it starts the daemons).  In
// maildrop, incoming, active, deferred and hold:
//   - a temporary file ("tmp.*") is removed: it was never acknowledged; except
//     in maildrop a complete one (owner-execute bit, readable) at least 10 s
//     old: postdrop's rename was lost, and it is renamed to its queue ID;
//   - a queue file without the owner-execute bit is removed from maildrop and
//     incoming (a writer never finished it) and moved to corrupt elsewhere;
//   - a queue file with the bit that cannot be read (no END, cut short, bad
//     records) was acknowledged and then damaged: it is moved to corrupt, never
//     removed, so that an administrator can look at it;
//   - other names are reported and left alone.
// Files younger than min_age seconds are not removed (a writer may still own
// them); 0 when nothing else runs.  Failures of single files are reported in skipped.
SpoolScan scan_spool(const std::string& spool, int64_t min_age = 0);

// Moves every file of active back to incoming, as the queue manager does when it
// starts: what was active when the system stopped is scheduled again, and its
// recipients marked done are not delivered twice.  Returns how many were moved.
size_t requeue_active(const std::string& spool);

// True when a queue file of that ID is in incoming, active, deferred or hold:
// the message is in the queue (maildrop and corrupt do not count).
bool is_queued(const std::string& spool, std::string_view queue_id);

}  // namespace postern
