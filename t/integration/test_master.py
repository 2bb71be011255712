"""master and the postern command with real processes: start, status, stop, the
lock that allows one master per spool, services started on demand from the
listeners master opens, restart after a crash, throttling of a crash loop,
reload, and the credentials children run as.  The services are small Python
programs the tests write into a temporary daemon_directory."""
import os
import pwd
import re
import grp
import shutil
import signal
import socket
import tempfile
import time

import pytest

from conftest import wait_for, program

ECHOD = r'''#!/usr/bin/python3
# Records its start, then answers every client on fd 4 with its name, pid and uid.
import os, select, socket, sys
here = os.path.dirname(os.path.abspath(__file__))
name = sys.argv[sys.argv.index("-n") + 1]
with open(os.path.join(here, "starts"), "a") as f:
    f.write("%s %d\n" % (name, os.getpid()))
if "crash" in sys.argv[1:] or os.path.basename(__file__) == "crashd":
    sys.exit(1)
if os.path.basename(__file__) == "oneshot":
    sys.exit(0)
s = socket.socket(fileno=4)
while True:
    select.select([s], [], [])
    try:
        c, _ = s.accept()
    except BlockingIOError:
        continue
    with open(os.path.join(here, "accepts"), "a") as f:
        f.write("%s %d\n" % (name, os.getpid()))
    try:
        c.sendall(("hello %s pid=%d uid=%d\n" % (name, os.getpid(), os.getresuid()[0])).encode())
    except OSError:
        pass  # a wakeup hangs up at once
    c.close()
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ask(port, timeout=5.0):
    """The service's greeting, retried until timeout while the port refuses."""
    deadline = time.time() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                return c.makefile().readline()
        except (ConnectionRefusedError, ConnectionResetError):
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def refused(port, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.1)
    return False




class Instance:
    def __init__(self, run, tmp_path):
        self.run = run
        self.confdir = run.confdir
        self.spool = str(tmp_path / "spool")
        self.maillog = str(tmp_path / "maillog")
        # Children may run as another user: their programs live where it can read them.
        self.daemons = tempfile.mkdtemp(prefix="postern-daemons-")
        os.chmod(self.daemons, 0o777)
        for name in ("echod", "crashd", "oneshot"):
            path = os.path.join(self.daemons, name)
            with open(path, "w") as f:
                f.write(ECHOD)
            os.chmod(path, 0o755)
        os.symlink(program("master"), os.path.join(self.daemons, "master"))
        if os.geteuid() == 0:
            self.owner, group = "nobody", "mail"  # setgid_group: a group of its own
        else:
            self.owner, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
        run.write_main_cf(
            "queue_directory = %s\ndaemon_directory = %s\nmail_owner = %s\nsetgid_group = %s\n"
            "maillog_file = %s\ninet_interfaces = 127.0.0.1\n"
            % (self.spool, self.daemons, self.owner, group, self.maillog))

    def master_cf(self, text):
        with open(os.path.join(self.confdir, "master.cf"), "w") as f:
            f.write(text)

    def postern(self, *args):
        return self.run("postern", "-c", self.confdir, *args)

    def pid(self):
        try:
            with open(os.path.join(self.spool, "pid", "master.pid")) as f:
                return int(f.read())
        except (FileNotFoundError, ValueError):
            return 0

    def starts(self, name):
        try:
            with open(os.path.join(self.daemons, "starts")) as f:
                return [line for line in f if line.split()[0] == name]
        except FileNotFoundError:
            return []

    def log(self):
        try:
            with open(self.maillog) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def cleanup(self):
        pid = self.pid()
        if pid:
            self.postern("stop")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.daemons, ignore_errors=True)


@pytest.fixture
def inst(run, tmp_path):
    i = Instance(run, tmp_path)
    yield i
    i.cleanup()


def alive(pid):
    """True while pid runs; a zombie, or a process reaped while we look, is dead."""
    try:
        os.kill(pid, 0)
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


def test_start_status_stop_and_one_master_per_spool(inst):
    port = free_port()
    inst.master_cf("127.0.0.1:%d inet n - n - - echod\n" % port)
    r = inst.postern("status")
    assert r.returncode == 1 and r.stdout == "postern is not running\n"

    r = inst.postern("start")
    assert r.returncode == 0, r.stderr
    pid = inst.pid()
    assert pid and alive(pid)
    r = inst.postern("status")
    assert r.returncode == 0 and r.stdout == "postern is running as PID %d\n" % pid

    r = inst.postern("start")
    assert r.returncode != 0 and "already running as PID %d" % pid in r.stderr
    r = inst.run("master", "-c", inst.confdir)
    assert r.returncode != 0 and "already running" in r.stderr
    assert inst.pid() == pid and alive(pid)

    assert ask(port).startswith("hello 127.0.0.1:%d " % port)
    child = int(ask(port).split("pid=")[1].split()[0])

    r = inst.postern("stop")
    assert r.returncode == 0, r.stderr
    assert not alive(pid)
    assert wait_for(lambda: not alive(child))
    assert not os.path.exists(os.path.join(inst.spool, "pid", "master.pid"))
    r = inst.postern("status")
    assert r.returncode == 1 and r.stdout == "postern is not running\n"
    assert refused(port)


def test_configuration_error_is_refused_with_file_and_line(inst):
    inst.master_cf("# services\n127.0.0.1:%d inet n - n - - echod\nbroken sideways n - n - - echod\n" % free_port())
    r = inst.postern("start")
    assert r.returncode != 0
    assert "master.cf:3:" in r.stderr
    r = inst.run("master", "-c", inst.confdir, "-d")
    assert r.returncode != 0 and "master.cf:3:" in r.stderr
    assert inst.pid() == 0 and inst.postern("status").returncode != 0


def test_service_started_on_demand_and_restarted_after_kill(inst):
    port = free_port()
    inst.master_cf("127.0.0.1:%d inet n - n - - echod\n" % port)
    assert inst.postern("start").returncode == 0
    assert inst.starts("127.0.0.1:%d" % port) == []  # nothing runs before a client comes

    reply = ask(port)
    child = int(reply.split("pid=")[1].split()[0])
    uid = int(reply.split("uid=")[1])
    assert uid == pwd.getpwnam(inst.owner).pw_uid
    assert int(ask(port).split("pid=")[1].split()[0]) == child  # the idle child serves again

    os.kill(child, signal.SIGKILL)
    assert wait_for(lambda: not alive(child))
    reply = ask(port)
    assert int(reply.split("pid=")[1].split()[0]) != child
    assert len(inst.starts("127.0.0.1:%d" % port)) == 2
    assert wait_for(lambda: "killed by signal 9" in inst.log())


def test_crashing_service_is_throttled(inst):
    port = free_port()
    inst.master_cf("127.0.0.1:%d inet n - n - - crashd\n" % port)
    assert inst.postern("start").returncode == 0
    # A client waits in the backlog, so master keeps seeing work for the service.
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        assert wait_for(lambda: "throttling" in inst.log())
        time.sleep(2)
        n = len(inst.starts("127.0.0.1:%d" % port))
        assert 5 <= n <= 6
        assert inst.pid() and alive(inst.pid())
    finally:
        c.close()


def test_wakeup_service_is_started_at_its_interval(inst):
    inst.master_cf("tick unix - - n 1 1 oneshot\n")
    assert inst.postern("start").returncode == 0
    assert os.path.exists(os.path.join(inst.spool, "private", "tick"))
    assert wait_for(lambda: len(inst.starts("tick")) >= 2, timeout=4)


def test_wakeup_triggers_the_running_process_and_question_mark_waits_for_use(inst):
    inst.master_cf("tick unix - - n 1 1 echod\nlazy unix - - n 1? 1 echod\n")
    assert inst.postern("start").returncode == 0
    accepts = os.path.join(inst.daemons, "accepts")

    def ticks():
        try:
            with open(accepts) as f:
                return [line for line in f if line.split()[0] == "tick"]
        except FileNotFoundError:
            return []
    # One process, started by the first wakeup, is woken again and again.
    assert wait_for(lambda: len(ticks()) >= 3, timeout=6), inst.log()
    assert len(inst.starts("tick")) == 1
    assert len({line.split()[1] for line in ticks()}) == 1
    # "1?": no process runs, so nothing wakes it.
    assert inst.starts("lazy") == []


def test_chroot_is_reported_not_silently_ignored(inst):
    inst.master_cf("jail unix - - y - 1 echod\n")
    r = inst.postern("start")
    assert r.returncode == 0
    # Said to whoever starts the system, with the place in master.cf: echod is no
    # daemon that can run chrooted (or master is not root).
    assert re.search(r"master.cf:1: service jail/unix: (echod cannot run chrooted yet|chroot needs master to run "
                     r"as root)", r.stderr), r.stderr


def test_reload_adds_removes_and_survives_a_bad_configuration(inst):
    old, new = free_port(), free_port()
    inst.master_cf("127.0.0.1:%d inet n - n - - echod\n" % old)
    assert inst.postern("start").returncode == 0
    pid = inst.pid()
    assert ask(old).startswith("hello 127.0.0.1:%d" % old)

    inst.master_cf("127.0.0.1:%d inet n - n - - echod\n" % new)
    assert inst.postern("reload").returncode == 0
    assert ask(new).startswith("hello 127.0.0.1:%d" % new)
    assert refused(old)
    assert inst.pid() == pid

    inst.master_cf("127.0.0.1:%d inet n - n - - echod\nbroken sideways\n" % old)
    os.kill(pid, signal.SIGHUP)  # postern reload itself refuses a bad configuration
    assert wait_for(lambda: "running configuration stays" in inst.log())
    assert "master.cf:2:" in inst.log()
    assert ask(new).startswith("hello 127.0.0.1:%d" % new)
    assert refused(old, timeout=0.5)
    assert inst.pid() == pid and alive(pid)
