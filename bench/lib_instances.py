"""Shared setup for the benchmarks that compare Postern with Debian's Postfix: private
instances of both in one temporary folder (their own configuration, queue and data
folders, smtpd on a loopback port), a test user whose home_mailbox is Maildir/, and
small helpers (load average, process memory). Both suites keep their default
durability: queue files are fsynced before smtpd answers 250, deliveries are fsynced."""
import importlib.machinery
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "t", "integration"))
from instance import MailInstance  # noqa: E402

# Postern's qmgr runs at most kMaxInFlight deliveries at once; Postfix delivers to one
# local user at most local_destination_concurrency_limit at once (2 by default), set
# to the same number so both deliver with the same parallelism.
POSTERN_DELIVERIES_AT_ONCE = 4

POSTERN_MASTER_CF = ("pickup unix n - n 1 1 pickup\ncleanup unix n - n - 0 cleanup\n"
                     "qmgr unix n - n 1 1 qmgr\nlocal unix - n n - - local\n"
                     "bounce unix - - n - 0 bounce\ndefer unix - - n - 0 bounce\n"
                     "trace unix - - n - 0 bounce\n")

# Only what SMTP in and local delivery need; chroot off, as Postern's daemons run.
POSTFIX_MASTER_CF = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
postlog   unix-dgram n  -       n       -       1       postlogd
"""

# The same policy for both: the user is local, loopback clients are trusted, no
# per-client connection limit (the load comes from one address).
COMMON_MAIN_CF = ("mydestination = $myhostname, localhost\nmynetworks = 127.0.0.0/8\nalias_maps =\n"
                  "home_mailbox = Maildir/\nsmtpd_client_connection_count_limit = 0\n")


def check(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr}{r.stdout}")
    return r.stdout


def ensure_postfix():
    """bench/table-lookups installs Postfix (no service started); one function serves all."""
    loader = importlib.machinery.SourceFileLoader("table_lookups", os.path.join(TOP, "bench", "table-lookups"))
    loader.load_module().ensure_postfix()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    """Whether something listens on 127.0.0.1:port, seen in /proc/net/tcp without
    connecting (a probe connection would leave Postfix an idle smtpd process)."""
    with open("/proc/net/tcp") as f:
        return any(fields[1] == "0100007F:%04X" % port and fields[3] == "0A"
                   for fields in (line.split() for line in list(f)[1:]))


def wait_listening(port, seconds=20):
    deadline = time.monotonic() + seconds
    while not listening(port):
        if time.monotonic() > deadline:
            raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {seconds} s")
        time.sleep(0.05)


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def memory_kib(pid):
    """(RSS, PSS) of a process in KiB; PSS is None where smaps_rollup is missing."""
    rss = pss = None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except FileNotFoundError:
        pass
    return rss or 0, pss


def pids_of(exe):
    found = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.readlink(f"/proc/{p}/exe") == exe:
                    found.append(int(p))
            except OSError:
                pass
    return found


class TestUser:
    """A user made for the run, with its home in the work folder; removed by close()."""

    def __init__(self, work):
        self.name = "pbench%05d" % (os.getpid() % 100000)
        self.home = os.path.join(work, "home")
        self.maildir = os.path.join(self.home, "Maildir")
        subprocess.run(["userdel", self.name], capture_output=True)
        check(["useradd", "-M", "-d", self.home, self.name])
        os.mkdir(self.home)
        pw = pwd.getpwnam(self.name)
        os.chown(self.home, pw.pw_uid, pw.pw_gid)

    def delivered(self):
        try:
            return len(os.listdir(os.path.join(self.maildir, "new")))
        except FileNotFoundError:
            return 0

    def empty_maildir(self):
        shutil.rmtree(self.maildir, ignore_errors=True)

    def close(self):
        subprocess.run(["userdel", self.name], capture_output=True)


class PosternInstance(MailInstance):
    """Postern under master with smtpd on a loopback port and the whole local path."""
    name = "Postern"

    def __init__(self, work, main_cf_extra=""):
        self.port = free_port()
        master_cf = f"127.0.0.1:{self.port} inet n - n - - smtpd\n" + POSTERN_MASTER_CF
        super().__init__(os.path.join(work, "postern-"),
                         ["smtpd", "pickup", "cleanup", "qmgr", "local", "bounce"], master_cf,
                         COMMON_MAIN_CF + main_cf_extra)

    def start(self):
        super().start()
        wait_listening(self.port)

    def smtpd_pids(self):
        return self.pids("smtpd")

    def master_pid(self):
        return self.pids("master")[0]


class PostfixInstance:
    """A private Postfix under work/postfix with smtpd on a loopback port."""
    name = "Postfix"

    def __init__(self, work, main_cf_extra=""):
        self.port = free_port()
        self.base = os.path.join(work, "postfix")
        self.confdir = os.path.join(self.base, "etc")
        self.maillog = os.path.join(self.base, "maillog")
        spool, data = os.path.join(self.base, "spool"), os.path.join(self.base, "data")
        for d in (self.base, self.confdir, spool, data):
            os.makedirs(d)
            os.chmod(d, 0o755)
        shutil.chown(data, "postfix")
        with open(os.path.join(self.confdir, "main.cf"), "w") as f:
            f.write(f"compatibility_level = 3.6\nqueue_directory = {spool}\ndata_directory = {data}\n"
                    "mail_owner = postfix\nsetgid_group = postdrop\nmyhostname = mail.example.com\n"
                    "inet_interfaces = loopback-only\ninet_protocols = ipv4\nalias_database =\nbiff = no\n"
                    f"maillog_file = {self.maillog}\nmaillog_file_prefixes = {self.base}\n"
                    f"local_destination_concurrency_limit = {POSTERN_DELIVERIES_AT_ONCE}\n"
                    + COMMON_MAIN_CF + main_cf_extra)
        with open(os.path.join(self.confdir, "master.cf"), "w") as f:
            f.write(f"127.0.0.1:{self.port} inet n - n - - smtpd\n" + POSTFIX_MASTER_CF)

    def start(self):
        check(["postfix", "-c", self.confdir, "start"])
        wait_listening(self.port)

    def smtpd_pids(self):
        """Postfix's smtpd processes of this instance (its master's children)."""
        master = self.master_pid()
        return [p for p in pids_of("/usr/lib/postfix/sbin/smtpd") if parent_of(p) == master]

    def master_pid(self):
        with open(os.path.join(self.base, "spool", "pid", "master.pid")) as f:
            return int(f.read().split()[0])

    def log(self):
        try:
            with open(self.maillog) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        subprocess.run(["postfix", "-c", self.confdir, "stop"], capture_output=True)


def parent_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def make_work_folder():
    work = tempfile.mkdtemp(prefix="postern-bench-")
    os.chmod(work, 0o755)
    return work
