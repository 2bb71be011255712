"""The auth service under master, asked over its real socket (private/auth) by a
small client written here from the codec's wire format (so the format itself is
checked from outside), with hashes made by postpasswd: right and wrong passwords,
unknown users, weak entries refused, a failure held back without holding up other
requests, a database that is down, malformed requests, system accounts (as root),
the privileges the service keeps; and postpasswd on a terminal."""
import os
import pty
import select
import socket
import struct
import subprocess
import time

import pytest

from conftest import program, wait_for
from instance import ROOT, MailInstance

MASTER_CF = "auth unix - n n - - auth\n"


# --- the codec (lib/util/codec.h), as much as the auth protocol needs ---------------

def attribute(tag, name, value):
    name = name.encode()
    return tag + bytes([len(name)]) + name + struct.pack(">I", len(value)) + value


def encode(mtype, fields):
    out = attribute(b"s", "type", mtype.encode())
    for name, value in fields.items():
        if isinstance(value, int):
            out += attribute(b"i", name, struct.pack(">q", value))
        else:
            out += attribute(b"s", name, value.encode() if isinstance(value, str) else value)
    return struct.pack(">I", len(out)) + out


def decode(payload):
    fields, i = {}, 0
    while i < len(payload):
        tag = payload[i:i + 1]
        n = payload[i + 1]
        name = payload[i + 2:i + 2 + n].decode()
        (length,) = struct.unpack(">I", payload[i + 2 + n:i + 6 + n])
        value = payload[i + 6 + n:i + 6 + n + length]
        i += 6 + n + length
        fields[name] = struct.unpack(">q", value)[0] if tag == b"i" else value.decode()
    return fields


class AuthConnection:
    def __init__(self, path, timeout=10):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.hello = self.read()
        self.next_id = 1

    def read(self):
        header = self._exactly(4)
        if header is None:
            return None
        (length,) = struct.unpack(">I", header)
        return decode(self._exactly(length))

    def _exactly(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def send(self, user, password, service="smtp", client="192.0.2.7"):
        rid = self.next_id
        self.next_id += 1
        self.sock.sendall(encode("auth-request", {"id": rid, "service": service, "user": user,
                                                  "password": password, "client_address": client}))
        return rid

    def verify(self, user, password, **kw):
        rid = self.send(user, password, **kw)
        reply = self.read()
        assert reply["type"] == "auth-reply" and reply["id"] == rid
        return reply

    def close(self):
        self.sock.close()


# --- the instance -----------------------------------------------------------------

def postpasswd(password, *args):
    r = subprocess.run([program("postpasswd"), "-p"] + list(args), input=password + "\n",
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


class Instance(MailInstance):
    def __init__(self, maps=None, extra=""):
        super().__init__("postern-auth-", ["auth"], MASTER_CF)
        if maps is None:
            maps = "hash:" + self.write_users({
                "alice": postpasswd("alice's secret"),
                "bob@example.com": "{BLF-CRYPT}" + postpasswd("bob pw", "-s", "bcrypt"),
                "carol": postpasswd("carol pw", "-s", "sha512-crypt"),
                "weak": "{PLAIN}weak pw",
                "plain": "plain pw",
                "locked": "!" + postpasswd("locked pw"),
            })
        self.main_cf += "auth_password_maps = %s\nauth_failure_delay = 0\n%s" % (maps, extra)
        with open(os.path.join(self.confdir, "main.cf"), "w") as f:
            f.write(self.main_cf)
        self.socket = os.path.join(self.spool, "private", "auth")

    def write_users(self, users):
        path = os.path.join(self.base, "users")
        with open(path, "w") as f:
            for user, value in users.items():
                f.write("%s %s\n" % (user, value))
        r = self.run("postmap", "hash:" + path)
        assert r.returncode == 0, r.stderr
        return path

    def start(self):
        super().start()
        assert wait_for(lambda: os.path.exists(self.socket)), self.log()

    def connect(self):
        return AuthConnection(self.socket)


@pytest.fixture
def inst():
    i = Instance()
    i.start()
    yield i
    i.stop()


def test_right_and_wrong_passwords(inst):
    c = inst.connect()
    assert c.hello["type"] == "hello" and c.hello["service"] == "auth"
    ok = c.verify("alice", "alice's secret")
    assert (ok["status"], ok["user"]) == ("ok", "alice")
    # Table keys are looked up in lower case; the canonical name is the table's.
    assert c.verify("ALICE", "alice's secret")["user"] == "alice"
    assert c.verify("bob@example.com", "bob pw")["status"] == "ok"      # bcrypt behind {BLF-CRYPT}
    assert c.verify("carol", "carol pw", service="imap")["status"] == "ok"  # SHA-512 crypt
    wrong = c.verify("alice", "alice's secreT")
    assert (wrong["status"], wrong["user"], wrong["reason"]) == ("fail", "", "authentication failed")
    # An unknown user gets the very same answer as a wrong password.
    unknown = c.verify("nobody-here", "x")
    assert (unknown["status"], unknown["reason"]) == ("fail", "authentication failed")
    assert c.verify("locked", "locked pw")["status"] == "fail"
    c.close()
    log = inst.log()
    assert "authenticated: user=<alice>, service=smtp, client=192.0.2.7" in log
    assert "authenticated: user=<carol>, service=imap, client=192.0.2.7" in log
    assert "authentication failed: user=<alice>, service=smtp, client=192.0.2.7: wrong password" in log
    assert "authentication failed: user=<nobody-here>, service=smtp, client=192.0.2.7: no such user" in log
    assert "user=<locked>" in log and "account locked" in log
    for password in ("alice's secret", "alice's secreT", "bob pw", "carol pw", "locked pw"):
        assert password not in log


def test_weak_entries_are_refused_with_a_warning_even_with_the_right_password(inst):
    c = inst.connect()
    assert c.verify("weak", "weak pw")["status"] == "fail"
    assert c.verify("plain", "plain pw")["status"] == "fail"
    c.close()
    log = inst.log()
    assert ("warning: user=<weak>: auth_password_maps entry refused, never compared: "
            "scheme {PLAIN} is weak or unsupported") in log
    assert ("warning: user=<plain>: auth_password_maps entry refused, never compared: "
            "not a yescrypt, bcrypt or SHA-512 crypt hash") in log
    assert "weak pw" not in log and "plain pw" not in log


def test_malformed_requests(inst):
    c = inst.connect()
    for user, password in (("", "x"), ("al\nice", "x"), ("alice", ""), ("a" * 1025, "x"),
                           ("alice", "a" * 1025), ("alice", "alice's\0secret")):
        assert c.verify(user, password)["status"] == "fail"
    # A frame that is not a request closes that connection only.
    c.sock.sendall(encode("something-else", {"id": 1}))
    assert c.read() is None
    c.close()
    assert "malformed request, closing the connection" in inst.log()
    c2 = inst.connect()
    assert c2.verify("alice", "alice's secret")["status"] == "ok"
    c2.close()


def test_failures_are_delayed_without_holding_up_others():
    inst = Instance(extra="auth_failure_delay = 1s\n")
    inst.start()
    try:
        c = inst.connect()
        start = time.time()
        bad = c.send("alice", "wrong")
        good = c.send("alice", "alice's secret")
        # Another client, meanwhile, is served at once too.
        other = inst.connect()
        assert other.verify("carol", "carol pw")["status"] == "ok"
        assert time.time() - start < 0.9
        first = c.read()
        assert (first["id"], first["status"]) == (good, "ok")
        assert time.time() - start < 0.9
        second = c.read()
        assert (second["id"], second["status"]) == (bad, "fail")
        assert time.time() - start >= 1.0
        c.close()
        other.close()
    finally:
        inst.stop()


def test_a_database_that_is_down_is_a_temporary_failure():
    base_cf = None
    inst = Instance(maps="mysql:PLACEHOLDER")
    try:
        base_cf = os.path.join(inst.base, "users.cf")
        with open(base_cf, "w") as f:
            f.write("hosts = inet:127.0.0.1:1\nuser = postern\npassword = x\ndbname = mail\n"
                    "query = SELECT password FROM users WHERE user = '%s'\n")
        os.chmod(base_cf, 0o600)
        with open(os.path.join(inst.confdir, "main.cf"), "w") as f:
            f.write(inst.main_cf.replace("mysql:PLACEHOLDER", "mysql:" + base_cf))
        inst.start()
        c = inst.connect()
        reply = c.verify("alice", "alice's secret")
        assert (reply["status"], reply["reason"]) == ("temp", "temporary authentication failure")
        c.close()
        assert "authentication not possible now: user=<alice>" in inst.log()
    finally:
        inst.stop()


@pytest.mark.skipif(not ROOT, reason="needs root to create a system account and drop privileges")
def test_system_accounts_and_privileges():
    name = "pauth%05d" % (os.getpid() % 100000)
    subprocess.run(["userdel", name], capture_output=True)
    r = subprocess.run(["useradd", "-M", "-N", "-s", "/usr/sbin/nologin", name], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    inst = Instance(extra="auth_system_users = yes\n")
    try:
        hashed = postpasswd("system pw")
        r = subprocess.run(["chpasswd", "-e"], input="%s:%s\n" % (name, hashed), capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        inst.start()
        c = inst.connect()
        ok = c.verify(name, "system pw", service="pop3")
        assert (ok["status"], ok["user"]) == ("ok", name)
        assert c.verify(name, "other")["status"] == "fail"
        # The table is asked first: alice still logs in from it.
        assert c.verify("alice", "alice's secret")["status"] == "ok"
        subprocess.run(["usermod", "-L", name], check=True, capture_output=True)
        assert c.verify(name, "system pw")["status"] == "fail"
        c.close()
        assert "account locked" in inst.log()
        # Not root any more: mail_owner, with the shadow group to read /etc/shadow.
        pids = inst.pids("auth")
        assert pids
        with open("/proc/%d/status" % pids[0]) as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        nobody = subprocess.run(["id", "-u", "nobody"], capture_output=True, text=True).stdout.strip()
        shadow = subprocess.run(["getent", "group", "shadow"], capture_output=True, text=True).stdout.split(":")[2]
        assert status["Uid"].split() == [nobody] * 4
        assert status["Gid"].split() == [shadow] * 4
        assert status["Groups"].split() == [shadow]
    finally:
        inst.stop()
        subprocess.run(["userdel", name], capture_output=True)


@pytest.mark.skipif(not ROOT, reason="needs root to see the service drop privileges")
def test_without_system_users_the_service_keeps_no_special_group(inst):
    c = inst.connect()
    assert c.verify("alice", "alice's secret")["status"] == "ok"
    c.close()
    pid = inst.pids("auth")[0]
    with open("/proc/%d/status" % pid) as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    nobody = subprocess.run(["id", "-u", "nobody"], capture_output=True, text=True).stdout.strip()
    owner_gid = subprocess.run(["id", "-g", "nobody"], capture_output=True, text=True).stdout.strip()
    assert status["Uid"].split() == [nobody] * 4
    assert status["Gid"].split() == [owner_gid] * 4
    assert status["Groups"].split() == [owner_gid]


# --- postpasswd ---------------------------------------------------------------------

def on_terminal(*args, answers):
    """Runs postpasswd on a pseudo-terminal, typing each answer after a prompt;
    returns (exit status, what the terminal showed, standard output)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([program("postpasswd")] + list(args), stdin=slave, stdout=subprocess.PIPE,
                            stderr=slave, start_new_session=True,
                            preexec_fn=lambda: __import__("fcntl").ioctl(0, __import__("termios").TIOCSCTTY, 0))
    os.close(slave)
    shown = b""
    for answer in answers:
        while b": " not in shown.split(b"\n")[-1]:
            ready, _, _ = select.select([master], [], [], 10)
            assert ready, shown
            shown += os.read(master, 1024)
        os.write(master, answer.encode() + b"\n")
        shown += b"\n"
    out, _ = proc.communicate(timeout=30)
    try:
        while select.select([master], [], [], 0.2)[0]:
            shown += os.read(master, 1024)
    except OSError:
        pass
    os.close(master)
    return proc.returncode, shown.decode(errors="replace"), out.decode()


def test_postpasswd_asks_twice_without_echo():
    rc, shown, out = on_terminal(answers=["terminal pw", "terminal pw"])
    assert rc == 0, shown
    assert "Enter new password: " in shown and "Retype new password: " in shown
    assert "terminal pw" not in shown  # not echoed
    hashed = out.strip()
    assert hashed.startswith("$y$")
    # The hash is what the service accepts.
    inst = Instance()
    inst.write_users({"dave": hashed})
    inst.start()
    try:
        c = inst.connect()
        assert c.verify("dave", "terminal pw")["status"] == "ok"
        c.close()
    finally:
        inst.stop()


def test_postpasswd_refuses_mismatches_empty_passwords_and_arguments():
    rc, shown, out = on_terminal(answers=["one", "two"])
    assert rc == 1 and out == ""
    assert "postpasswd: fatal: the passwords do not match" in shown
    rc, shown, out = on_terminal(answers=["", ""])
    assert rc == 1 and "an empty password is not allowed" in shown
    r = subprocess.run([program("postpasswd"), "secret"], capture_output=True, text=True)
    assert r.returncode == 64 and "never taken from the command line" in r.stderr and r.stdout == ""
    r = subprocess.run([program("postpasswd"), "-s", "md5-crypt", "-p"], input="x\n", capture_output=True, text=True)
    assert r.returncode == 64 and "unknown scheme 'md5-crypt'" in r.stderr
    r = subprocess.run([program("postpasswd"), "-p"], input="", capture_output=True, text=True)
    assert r.returncode == 1 and "no password on standard input" in r.stderr
    r = subprocess.run([program("postpasswd"), "-p", "-s", "BLF-CRYPT"], input="x\r\n", capture_output=True,
                       text=True)
    assert r.returncode == 0 and r.stdout.startswith("$2b$")


def test_the_service_retires_after_max_idle():
    inst = Instance(extra="max_idle = 1s\n")
    inst.start()
    try:
        c = inst.connect()
        assert c.verify("alice", "alice's secret")["status"] == "ok"
        # A connected client keeps it running past max_idle.
        time.sleep(1.5)
        assert c.verify("alice", "alice's secret")["status"] == "ok"
        c.close()
        assert wait_for(lambda: inst.pids("auth") == [], timeout=5), inst.log()
        # master starts another on demand.
        c = inst.connect()
        assert c.verify("alice", "alice's secret")["status"] == "ok"
        c.close()
    finally:
        inst.stop()


def test_the_service_retires_after_max_use_once_its_clients_are_gone():
    inst = Instance(extra="max_idle = 100s\nmax_use = 1\n")
    inst.start()
    try:
        c = inst.connect()
        assert c.verify("alice", "alice's secret")["status"] == "ok"
        running = set(inst.pids("auth"))
        time.sleep(0.5)
        assert set(inst.pids("auth")) == running  # still serving its one client
        assert c.verify("carol", "carol pw")["status"] == "ok"
        c.close()
        # The process that served it exits long before max_idle.
        assert wait_for(lambda: len(set(inst.pids("auth")) & running) < len(running), timeout=5), inst.log()
        c = inst.connect()
        assert c.verify("alice", "alice's secret")["status"] == "ok"
        c.close()
    finally:
        inst.stop()
