// The spool tree, queue listings and the startup scan (spool.h, docs/queue.md).
#include "mail/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>

#include "mail/config.h"
#include "mail/queue_id.h"
#include "util/error.h"
#include "util/fd.h"
#include "util/file.h"
#include "util/log.h"
#include "util/strings.h"

namespace postern {

using User = SpoolFolder::User;
using Group = SpoolFolder::Group;

const std::vector<SpoolFolder> kSpoolFolders = {
    {"", 0755, User::kRoot, Group::kRoot},
    // Others may neither list nor open what is in maildrop; the sticky bit keeps
    // one submitter from removing another's file.
    {"maildrop", 01730, User::kOwner, Group::kSetgid},
    {"incoming", 0700, User::kOwner, Group::kOwner},
    {"active", 0700, User::kOwner, Group::kOwner},
    {"deferred", 0700, User::kOwner, Group::kOwner},
    {"hold", 0700, User::kOwner, Group::kOwner},
    {"corrupt", 0700, User::kOwner, Group::kOwner},
    {"bounce", 0700, User::kOwner, Group::kOwner},
    {"defer", 0700, User::kOwner, Group::kOwner},
    {"trace", 0700, User::kOwner, Group::kOwner},
    {"private", 0700, User::kOwner, Group::kOwner},
    {"public", 0710, User::kOwner, Group::kSetgid},
    {"pid", 0755, User::kRoot, Group::kRoot},
};

namespace {

uid_t uid_of(const SpoolFolder& f, const SpoolOwners& o) { return f.user == User::kRoot ? o.root_uid : o.owner; }
gid_t gid_of(const SpoolFolder& f, const SpoolOwners& o) {
  switch (f.group) {
    case Group::kRoot: return o.root_gid;
    case Group::kOwner: return o.group;
    case Group::kSetgid: return o.setgid_group;
  }
  return o.root_gid;
}

std::string folder_path(const std::string& spool, const SpoolFolder& f) {
  return f.name.empty() ? spool : spool + "/" + std::string(f.name);
}

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

// Names in a folder, without "." and "..".
std::vector<std::string> folder_names(const std::string& path) {
  int fd = retry_eintr([&] { return ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW); });
  if (fd < 0) throw SystemError(errno, "open " + path);
  DirPtr dir(::fdopendir(fd));
  if (!dir) {
    int err = errno;
    ::close(fd);
    throw SystemError(err, "opendir " + path);
  }
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* e = ::readdir(dir.get())) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
    errno = 0;
  }
  if (errno != 0) throw SystemError(errno, "readdir " + path);
  return names;
}

bool is_temp_name(std::string_view name) { return name.starts_with("tmp."); }

// How old a complete temporary file in maildrop must be before the scan takes it
// for one whose rename was lost, rather than one its writer is renaming now.
constexpr time_t kRenameGrace = 10;

}  // namespace

Result<SpoolOwners> spool_owners(const Config& config) {
  SpoolOwners owners;
  std::string user = config.str("mail_owner");
  std::string group = config.str("setgid_group");
  struct passwd* pw = ::getpwnam(user.c_str());
  if (!pw) return fail("mail_owner: unknown user " + user + " (run as root, postern check creates it)");
  if (pw->pw_uid == 0) return fail("mail_owner must not be root");
  owners.owner = pw->pw_uid;
  owners.group = pw->pw_gid;
  struct group* gr = ::getgrnam(group.c_str());
  if (!gr) return fail("setgid_group: unknown group " + group + " (run as root, postern check creates it)");
  if (gr->gr_gid == 0 || gr->gr_gid == pw->pw_gid) return fail("setgid_group must be a group of its own");
  owners.setgid_group = gr->gr_gid;
  return owners;
}

void create_spool(const std::string& spool, const SpoolOwners& owners) {
  for (const SpoolFolder& f : kSpoolFolders) {
    std::string path = folder_path(spool, f);
    if (::mkdir(path.c_str(), 0700) < 0 && errno != EEXIST) throw SystemError(errno, "mkdir " + path);
    // Through an fd opened without following links, so that a link planted in
    // place of a folder is refused rather than changed.
    UniqueFd fd = open_file(path, O_RDONLY | O_DIRECTORY);
    check_sys(::fchown(fd.get(), uid_of(f, owners), gid_of(f, owners)), "chown " + path);
    check_sys(::fchmod(fd.get(), f.mode), "chmod " + path);
  }
}

std::vector<std::string> check_spool(const std::string& spool, const SpoolOwners& owners) {
  std::vector<std::string> problems;
  for (const SpoolFolder& f : kSpoolFolders) {
    std::string path = folder_path(spool, f);
    struct stat st;
    if (::lstat(path.c_str(), &st) < 0) {
      problems.push_back(path + ": " + std::strerror(errno));
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      problems.push_back(path + ": not a directory");
      continue;
    }
    if ((st.st_mode & 07777) != f.mode)
      problems.push_back(format("%s: mode %04o, should be %04o", path.c_str(), st.st_mode & 07777, f.mode));
    if (st.st_uid != uid_of(f, owners) || st.st_gid != gid_of(f, owners))
      problems.push_back(format("%s: owner %u:%u, should be %u:%u", path.c_str(), (unsigned)st.st_uid,
                                (unsigned)st.st_gid, (unsigned)uid_of(f, owners), (unsigned)gid_of(f, owners)));
  }
  return problems;
}

std::vector<std::string> list_queue(const std::string& spool, QueueName queue) {
  std::vector<std::string> ids;
  for (std::string& name : folder_names(spool + "/" + std::string(queue_folder(queue))))
    if (is_valid_queue_id(name)) ids.push_back(std::move(name));
  std::sort(ids.begin(), ids.end());
  return ids;
}

SpoolScan scan_spool(const std::string& spool, int64_t min_age) {
  SpoolScan scan;
  const time_t now = ::time(nullptr);
  for (QueueName queue : {QueueName::kMaildrop, QueueName::kIncoming, QueueName::kActive, QueueName::kDeferred,
                          QueueName::kHold}) {
    const std::string folder(queue_folder(queue));
    const bool removable_incomplete = queue == QueueName::kMaildrop || queue == QueueName::kIncoming;
    std::vector<std::string> names;
    try {
      names = folder_names(spool + "/" + folder);
    } catch (const SystemError& e) {
      scan.skipped.push_back(folder + ": " + e.what());
      continue;
    }
    for (const std::string& name : names) {
      const std::string path = spool + "/" + folder + "/" + name;
      const std::string label = folder + "/" + name;
      struct stat st;
      if (::lstat(path.c_str(), &st) < 0) {
        if (errno != ENOENT) scan.skipped.push_back(label + ": " + std::strerror(errno));
        continue;
      }
      const bool old_enough = now - st.st_mtime >= min_age;
      auto remove = [&] {
        if (!old_enough) return;
        if (::unlink(path.c_str()) == 0) {
          scan.removed.push_back(label);
          log_warn("removed incomplete queue file %s", label.c_str());
        } else if (errno != ENOENT) {
          scan.skipped.push_back(label + ": " + std::strerror(errno));
        }
      };
      auto quarantine = [&](const std::string& why) {
        Result<void> moved = move_queue_file(spool, name, queue, QueueName::kCorrupt);
        if (moved) {
          scan.quarantined.push_back(label);
          log_warn("moved to corrupt: %s", why.c_str());
        } else {
          scan.skipped.push_back(label + ": " + moved.error());
        }
      };

      if (is_temp_name(name) && S_ISREG(st.st_mode)) {
        // postdrop cannot fsync maildrop (mode 1730: no read permission for it), so
        // a power failure may undo its rename: a complete file under its temporary
        // name is a message a user was told was queued.  Give it its queue ID.
        if (queue == QueueName::kMaildrop && (st.st_mode & S_IXUSR)) {
          if (now - st.st_mtime < kRenameGrace) continue;  // its writer may be about to rename it
          Result<QueueFile> qf = QueueFile::open(path, O_RDONLY);
          if (qf) {
            const QueueEnvelope& env = qf->envelope();
            std::string id = make_queue_id(env.arrival_seconds, env.arrival_microseconds, st.st_ino);
            std::string target = spool + "/" + folder + "/" + id;
            if (int err = rename_noreplace(path, target)) {
              scan.skipped.push_back(label + ": rename to " + id + ": " + std::strerror(err));
            } else {
              scan.recovered.push_back(folder + "/" + id);
              log_warn("%s: complete but never renamed; queued as %s", label.c_str(), id.c_str());
            }
            continue;
          }
        }
        remove();
        continue;
      }
      if (!is_valid_queue_id(name)) {
        scan.skipped.push_back(label + ": not a queue file name");
        continue;
      }
      QueueFileStatus status;
      Result<QueueFile> qf = QueueFile::open(path, O_RDONLY, &status);
      switch (status) {
        case QueueFileStatus::kOk:
          ++scan.complete;
          break;
        case QueueFileStatus::kMissing:
          break;
        case QueueFileStatus::kIoError:
          scan.skipped.push_back(qf.error());
          break;
        case QueueFileStatus::kIncomplete:
          if (!(st.st_mode & S_IXUSR) && S_ISREG(st.st_mode)) {
            if (removable_incomplete) remove();
            else quarantine(qf.error());
            break;
          }
          [[fallthrough]];
        case QueueFileStatus::kCorrupt:
          quarantine(qf.error());
          break;
      }
    }
  }
  return scan;
}

size_t requeue_active(const std::string& spool) {
  size_t moved = 0;
  for (const std::string& id : list_queue(spool, QueueName::kActive)) {
    Result<void> r = move_queue_file(spool, id, QueueName::kActive, QueueName::kIncoming);
    if (r) ++moved;
    else log_warn("%s", r.error().c_str());
  }
  return moved;
}

bool is_queued(const std::string& spool, std::string_view queue_id) {
  if (!is_valid_queue_id(queue_id)) return false;
  for (QueueName q : {QueueName::kIncoming, QueueName::kActive, QueueName::kDeferred, QueueName::kHold}) {
    struct stat st;
    if (::lstat(queue_file_path(spool, q, queue_id).c_str(), &st) == 0) return true;
  }
  return false;
}

}  // namespace postern
