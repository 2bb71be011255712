"""The virtual delivery agent under master, with the same users in hash: tables and
in a real MariaDB loaded from conf/mysql-schema.sql and read through conf's
mysql_*.cf queries: delivery to several virtual domains (Maildir and mbox) as the
mailbox owner, unknown users, quota edge cases (exactly at the limit, one byte
over, maildirsize recalculation), and MariaDB stopped mid-run (deferred, then
delivered once it is back).

Messages are queued by sendmail -> pickup -> cleanup; the test then plays the queue
manager: it moves the queue file to active/ and sends virtual a DeliveryRequest
over private/virtual (lib/mail/delivery_protocol.h, lib/util/codec.h)."""
import os
import pwd
import re
import socket
import struct
import subprocess
import time

import pytest

from conftest import TOP, wait_for
from instance import ROOT, MailInstance
from mariadb import mariadb_server  # noqa: F401 (a fixture)

MASTER_CF = ("pickup unix n - n 1 1 pickup\n"
             "cleanup unix n - n - 0 cleanup\n"
             "virtual unix - n n - - virtual\n")
QMGR_CF = ("qmgr unix n - n 1 1 qmgr\n"
           "bounce unix - - n - 0 bounce\n")
VUID = 5000 if ROOT else os.getuid()
VGID = 5000 if ROOT else os.getgid()
SENDER = "alice@example.org"

# (address, mailbox under virtual_mailbox_base, quota in bytes; 0: the default, none)
USERS = [("ann@a.example", "a.example/ann/", 1000000),
         ("bob@b.example", "b.example/bob", 0),
         ("cat@b.example", "b.example/cat/", 0)]

# (address or @domain, where mail goes) in virtual_alias_maps
ALIASES = [("info@a.example", "ann@a.example, cat@b.example"),
           ("@c.example", "bob@b.example"),
           ("loop1@a.example", "loop2@a.example"),
           ("loop2@a.example", "loop1@a.example")]


# --- the codec (lib/util/codec.h) ---------------------------------------------------

def attribute(tag, name, value):
    name = name.encode()
    return tag + bytes([len(name)]) + name + struct.pack(">I", len(value)) + value


def attributes(fields):
    out = b""
    for name, value in fields.items():
        if isinstance(value, int):
            out += attribute(b"i", name, struct.pack(">q", value))
        elif isinstance(value, list):
            items = b"".join(struct.pack(">I", len(r)) + r for r in (attributes(v) for v in value))
            out += attribute(b"R", name, items)
        else:
            out += attribute(b"s", name, value.encode())
    return out


def decode(payload):
    fields, i = {}, 0
    while i < len(payload):
        tag, n = payload[i:i + 1], payload[i + 1]
        name = payload[i + 2:i + 2 + n].decode()
        (length,) = struct.unpack(">I", payload[i + 2 + n:i + 6 + n])
        value = payload[i + 6 + n:i + 6 + n + length]
        i += 6 + n + length
        if tag == b"i":
            fields[name] = struct.unpack(">q", value)[0]
        elif tag == b"R":
            records, j = [], 0
            while j < len(value):
                (rlen,) = struct.unpack(">I", value[j:j + 4])
                records.append(decode(value[j + 4:j + 4 + rlen]))
                j += 4 + rlen
            fields[name] = records
        else:
            fields[name] = value.decode()
    return fields


def read_frame(sock):
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            assert chunk, "virtual closed the connection"
            data += chunk
        return data
    (length,) = struct.unpack(">I", exactly(4))
    return decode(exactly(length))


# --- queue files (lib/mail/queue_file.h) ----------------------------------------------

def queue_records(path):
    """(offset, type, data) of every record."""
    with open(path, "rb") as f:
        data = f.read()
    out, i = [], 0
    while i < len(data):
        rtype = chr(data[i])
        (length,) = struct.unpack(">I", data[i + 1:i + 5])
        out.append((i, rtype, data[i + 5:i + 5 + length]))
        i += 5 + length
    return out


def orcpts(path):
    """{address: ORCPT} of the recipient records."""
    found = {}
    for _, rtype, data in queue_records(path):
        if rtype in "RD":
            (orcpt_len,) = struct.unpack(">H", data[1:3])
            found[data[3 + orcpt_len:].decode()] = data[3:3 + orcpt_len].decode()
    return found


def recipients(path, types="R"):
    """{address: offset} of the recipient records of the given types (R undone, D done)."""
    found = {}
    for offset, rtype, data in queue_records(path):
        if rtype in types:
            (orcpt_len,) = struct.unpack(">H", data[1:3])
            found[data[3 + orcpt_len:].decode()] = offset
    return found


def content(path):
    return [d for _, t, d in queue_records(path) if t == "C"][0].decode()


# --- the instance -----------------------------------------------------------------

class Instance(MailInstance):
    def __init__(self, backend, db=None, with_qmgr=False, with_auth=False):
        daemons = ["pickup", "cleanup", "virtual"] + (["qmgr", "bounce"] if with_qmgr else []) + \
            (["auth"] if with_auth else [])
        super().__init__("postern-virtual-", daemons, MASTER_CF + (QMGR_CF if with_qmgr else "") +
                         ("auth unix - n n - - auth\n" if with_auth else ""))
        self.backend, self.db = backend, db
        self.vbase = os.path.join(self.base, "vmail")
        os.mkdir(self.vbase, 0o750)
        os.chown(self.vbase, VUID, VGID)
        if backend == "hash":
            maps = self.hash_tables()
        else:
            maps = self.mysql_tables()
        self.main_cf += ("virtual_user_database = %(admin)s\nauth_password_maps = %(passwords)s\n"
                         "auth_failure_delay = 0\n"
                         "virtual_mailbox_domains = %(domains)s\nvirtual_mailbox_maps = %(mailboxes)s\n"
                         "virtual_alias_domains = c.example\nvirtual_alias_maps = %(aliases)s\n"
                         "virtual_mailbox_limit_maps = %(quota)s\nvirtual_mailbox_base = %(base)s\n"
                         "virtual_uid_maps = static:%(uid)d\nvirtual_gid_maps = static:%(gid)d\n"
                         "recipient_delimiter = +\n"
                         % dict(maps, base=self.vbase, uid=VUID, gid=VGID))
        with open(os.path.join(self.confdir, "main.cf"), "w") as f:
            f.write(self.main_cf)

    def hash_tables(self):
        self.write_table("vdomains", "a.example OK\nb.example OK\n")
        self.write_table("vmailbox", "".join("%s %s\n" % (a, m) for a, m, _ in USERS))
        self.write_quota({a: q for a, _, q in USERS})
        self.write_table("valias", "".join("%s %s\n" % (a, t) for a, t in ALIASES))
        self.write_table("vpasswd", "")
        maps = {k: "hash:" + os.path.join(self.confdir, f)
                for k, f in (("domains", "vdomains"), ("mailboxes", "vmailbox"), ("quota", "vquota"),
                             ("aliases", "valias"), ("passwords", "vpasswd"))}
        return dict(maps, admin="hash:" + self.confdir)

    def write_table(self, name, text):
        path = os.path.join(self.confdir, name)
        with open(path, "w") as f:
            f.write(text)
        r = self.run("postmap", "hash:" + path)
        assert r.returncode == 0, r.stderr

    def write_quota(self, quotas):
        self.write_table("vquota", "".join("%s %d\n" % (a, q) for a, q in quotas.items() if q))

    def mysql_tables(self):
        db = self.db
        os.chmod(db.dir, 0o711)  # cleanup, as mail_owner, reaches the server's socket there
        with open(os.path.join(TOP, "conf", "mysql-schema.sql")) as f:
            schema = f.read()
        db.sql("DROP TABLE IF EXISTS aliases, users, domains;\n" + schema, database=db.database)
        rows = ",".join("('%s', '%s', '*', '%s', %d)" % (a, a.split("@")[1], m, q) for a, m, q in USERS)
        aliases = ",".join("('%s', '%s', '%s')" % (a, a.split("@")[1], t) for a, t in ALIASES)
        db.sql("INSERT INTO domains (domain, class) VALUES ('a.example', 'mailbox'), ('b.example', 'mailbox'),"
               " ('c.example', 'alias');\n"
               "INSERT INTO users (email, domain, password, maildir, quota) VALUES %s;\n"
               "INSERT INTO aliases (address, domain, goto) VALUES %s;" % (rows, aliases),
               database=db.database)
        maps = {}
        for key, name in (("domains", "mysql_virtual_domains.cf"), ("mailboxes", "mysql_virtual_mailboxes.cf"),
                          ("quota", "mysql_virtual_quota.cf"), ("aliases", "mysql_virtual_aliases.cf"),
                          ("passwords", "mysql_passwords.cf")):
            with open(os.path.join(TOP, "conf", name)) as f:
                text = f.read()
            text = re.sub(r"(?m)^hosts = .*$", "hosts = unix:" + db.socket, text)
            text = re.sub(r"(?m)^user = .*$", "user = " + db.user, text)
            text = re.sub(r"(?m)^password = .*$", "password = " + db.password, text)
            text = re.sub(r"(?m)^dbname = .*$", "dbname = " + db.database, text)
            path = os.path.join(self.confdir, name)
            with open(path, "w") as f:
                f.write(text + "retry_interval = 1\n")
            os.chmod(path, 0o600)
            os.chown(path, pwd.getpwnam(self.owner).pw_uid, -1)  # cleanup and qmgr read them as mail_owner
            maps[key] = "mysql:" + path
        admin = os.path.join(self.base, "admin.cf")
        with open(admin, "w") as f:
            f.write("hosts = unix:%s\nuser = root\npassword =\ndbname = %s\n" % (db.socket, db.database))
        maps["admin"] = "mysql:" + admin
        return maps

    def set_quota(self, address, quota):
        if self.backend == "hash":
            quotas = {a: q for a, _, q in USERS}
            quotas[address] = quota
            self.write_quota(quotas)
            time.sleep(1.1)  # a hash: table is checked for a rebuild once a second
        else:
            self.db.sql("UPDATE users SET quota = %d WHERE email = '%s'" % (quota, address),
                        database=self.db.database)

    def queue_message(self, rcpts, body="hello\n", timeout=15):
        """Queues a message and moves it to active/; returns its path there."""
        before = set(self.queue("incoming"))
        self.sendmail("-f", SENDER, *rcpts, input="Subject: test\n\n" + body)
        assert wait_for(lambda: set(self.queue("incoming")) - before, timeout), self.log()
        [qid] = set(self.queue("incoming")) - before
        active = os.path.join(self.spool, "active", qid)
        os.rename(os.path.join(self.spool, "incoming", qid), active)
        return active

    def deliver(self, path):
        """Asks virtual to deliver every undone recipient; {address: (status, dsn, text)}."""
        qid = os.path.basename(path)
        rcpts = recipients(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(30)
        sock.connect(os.path.join(self.spool, "private", "virtual"))
        try:
            hello = read_frame(sock)
            assert hello["type"] == "hello" and hello["service"] == "virtual"
            payload = attribute(b"s", "type", b"delivery-request") + attributes({
                "queue_id": qid, "queue_path": "active/" + qid, "sender": SENDER, "nexthop": "",
                "arrival_seconds": int(time.time()), "attempt": 1,
                "recipients": [{"address": a, "orcpt": "", "notify": 0, "offset": o} for a, o in rcpts.items()]})
            sock.sendall(struct.pack(">I", len(payload)) + payload)
            reply = read_frame(sock)
        finally:
            sock.close()
        by_offset = {o: a for a, o in rcpts.items()}
        return {by_offset[r["offset"]]: (r["status"], r["dsn"], r["text"]) for r in reply["results"]}

    def maildir(self, address):
        mailbox = [m for a, m, _ in USERS if a == address][0]
        return os.path.join(self.vbase, mailbox)

    def messages(self, address):
        md = self.maildir(address)
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(md, sub)
            if os.path.isdir(d):
                out += [os.path.join(d, n) for n in sorted(os.listdir(d))]
        return out


def delivered_size(path, address):
    """What the Maildir file of this message for address will hold."""
    text = content(path)
    return len("Delivered-To: %s\nReturn-Path: <%s>\n" % (address, SENDER)) + len(text) + \
        (0 if text.endswith("\n") else 1)


def size_tag(name):
    return int(re.search(r",S=(\d+)", name).group(1))


@pytest.fixture(params=["hash", "mysql"])
def inst(request):
    db = request.getfixturevalue("mariadb_server") if request.param == "mysql" else None
    i = Instance(request.param, db)
    i.start()
    yield i
    i.stop()


# --- tests -------------------------------------------------------------------------

def test_several_domains_maildir_and_mbox_as_the_owner(inst):
    path = inst.queue_message(["ann@a.example", "bob@b.example", "cat+news@b.example", "nobody@b.example"])
    results = inst.deliver(path)
    assert results["ann@a.example"][:2] == ("ok", "2.0.0"), results
    assert results["bob@b.example"][:2] == ("ok", "2.0.0"), results
    assert results["cat+news@b.example"][:2] == ("ok", "2.0.0"), results
    assert results["nobody@b.example"] == ("bounce", "5.1.1", "user unknown in virtual mailbox table")
    # Delivered ones are marked done in the queue file; the bounced one is left to qmgr.
    assert set(recipients(path, "D")) == {"ann@a.example", "bob@b.example", "cat+news@b.example"}
    assert set(recipients(path, "R")) == {"nobody@b.example"}

    [ann] = inst.messages("ann@a.example")
    with open(ann) as f:
        text = f.read()
    assert text.startswith("Delivered-To: ann@a.example\nReturn-Path: <alice@example.org>\n")
    assert "Subject: test\n" in text and text.endswith("\nhello\n")
    assert len(inst.messages("cat@b.example")) == 1  # the extension finds the user
    with open(os.path.join(inst.vbase, "b.example", "bob")) as f:
        mbox = f.read()
    assert mbox.startswith("From alice@example.org ") and "Delivered-To: bob@b.example\n" in mbox
    # Created by the owner, private to it.
    for p in (inst.maildir("ann@a.example"), ann, os.path.join(inst.vbase, "b.example", "bob")):
        st = os.stat(p)
        assert (st.st_uid, st.st_gid) == (VUID, VGID), p
        assert st.st_mode & 0o077 == 0, p
    log = inst.log()
    assert "to=<ann@a.example>, relay=virtual, status=sent" in log
    assert "to=<nobody@b.example>, relay=virtual, status=bounced (5.1.1" in log

    # The same request again (a queue manager that lost the reply): nothing twice.
    os.chmod(path, 0o700)
    again = inst.deliver(path)
    assert again["nobody@b.example"][0] == "bounce"
    assert len(inst.messages("ann@a.example")) == 1


def test_quota_exactly_at_the_limit_then_one_byte_over_then_recalculated(inst):
    address = "ann@a.example"
    first = inst.queue_message([address], body="first\n")
    assert inst.deliver(first)[address][0] == "ok"
    [one] = inst.messages(address)
    used = size_tag(one)
    md = inst.maildir(address)

    # Exactly at the limit: delivered, maildirsize rebuilt for the new quota, then appended.
    second = inst.queue_message([address], body="second message\n")
    size = delivered_size(second, address)
    inst.set_quota(address, used + size)
    result = inst.deliver(second)[address]
    assert result[:2] == ("ok", "2.0.0"), result
    with open(os.path.join(md, "maildirsize")) as f:
        assert f.read() == "%dS\n%d 1\n%d 1\n" % (used + size, used, size)

    # One byte over: deferred 4.2.2 and nothing written, the queue file keeps the recipient.
    third = inst.queue_message([address], body="x\n")
    result = inst.deliver(third)[address]
    assert result == ("defer", "4.2.2", "mailbox full: quota %dS exceeded" % (used + size)), result
    assert len(inst.messages(address)) == 2
    assert recipients(third) == {address: recipients(third)[address]}
    inst.set_quota(address, used + size + delivered_size(third, address) - 1)
    assert inst.deliver(third)[address][:2] == ("defer", "4.2.2")

    # A reader removed a message without recording it: the file over quota and older
    # than 15 minutes is recalculated, and the message fits.
    os.unlink(inst.messages(address)[0])
    old = time.time() - 3600
    os.utime(os.path.join(md, "maildirsize"), (old, old))
    result = inst.deliver(third)[address]
    assert result[0] == "ok", result
    assert len(inst.messages(address)) == 2
    with open(os.path.join(md, "maildirsize")) as f:
        assert f.read() == "%dS\n%d 1\n%d 1\n" % (used + size + delivered_size(third, address) - 1, size,
                                                   delivered_size(third, address))


def test_mariadb_stopped_mid_run_defers_then_delivers(mariadb_server):
    inst = Instance("mysql", mariadb_server)
    inst.start()
    try:
        path = inst.queue_message(["ann@a.example", "cat@b.example"])
        mariadb_server.stop()
        try:
            results = inst.deliver(path)
        finally:
            mariadb_server.start()
        for address in ("ann@a.example", "cat@b.example"):
            status, dsn, text = results[address]
            assert (status, dsn) == ("defer", "4.3.0"), results
            assert "lookup failed" in text
        assert inst.messages("ann@a.example") == []
        assert set(recipients(path)) == {"ann@a.example", "cat@b.example"}
        time.sleep(1.2)  # retry_interval = 1 in the test's .cf files
        results = inst.deliver(path)
        assert all(r[0] == "ok" for r in results.values()), results
        assert len(inst.messages("ann@a.example")) == 1 and len(inst.messages("cat@b.example")) == 1
    finally:
        inst.stop()


def test_virtual_aliases_expand_in_cleanup_and_the_results_are_delivered(inst):
    path = inst.queue_message(["info@a.example", "Someone@c.example"])
    # One-to-many and the catch-all of an alias domain, each with its original as ORCPT.
    assert orcpts(path) == {"ann@a.example": "rfc822;info@a.example", "cat@b.example": "rfc822;info@a.example",
                            "bob@b.example": "rfc822;Someone@c.example"}
    results = inst.deliver(path)
    assert all(r[0] == "ok" for r in results.values()), results
    assert len(inst.messages("ann@a.example")) == 1 and len(inst.messages("cat@b.example")) == 1


def test_a_virtual_alias_loop_is_returned_to_the_sender_not_dropped(inst):
    inst.sendmail("-f", SENDER, "loop1@a.example", input="Subject: round and round\n\nhi\n")
    # cleanup refuses it for good; pickup returns it to the sender with the reason.
    assert wait_for(lambda: inst.queue("incoming"), 15), inst.log()
    [qid] = inst.queue("incoming")
    path = os.path.join(inst.spool, "incoming", qid)
    assert set(recipients(path)) == {SENDER}
    text = content(path)
    assert "virtual alias loop: loop1@a.example -> loop2@a.example -> loop1@a.example" in text
    assert "Subject: round and round" in text
    assert inst.queue("maildrop") == []


def test_mariadb_down_while_expanding_aliases_keeps_the_message_until_it_is_back(mariadb_server):
    inst = Instance("mysql", mariadb_server)
    inst.start()
    try:
        mariadb_server.stop()
        try:
            inst.sendmail("-f", SENDER, "info@a.example", input="Subject: later\n\nhi\n")
            assert wait_for(lambda: "virtual_alias_maps lookup of info@a.example failed" in inst.log(), 15), \
                inst.log()
            assert inst.queue("incoming") == []
            assert len(inst.queue("maildrop")) == 1  # kept, not bounced, not dropped
        finally:
            mariadb_server.start()
        time.sleep(1.2)  # retry_interval = 1 in the test's .cf files
        # The next submission pokes pickup, which scans maildrop again: both are queued now.
        inst.sendmail("-f", SENDER, "cat@b.example", input="Subject: poke\n\nhi\n")
        assert wait_for(lambda: len(inst.queue("incoming")) == 2, 30), inst.log()
        queued = [set(recipients(os.path.join(inst.spool, "incoming", q))) for q in inst.queue("incoming")]
        assert sorted(queued, key=len) == [{"cat@b.example"}, {"ann@a.example", "cat@b.example"}]
        assert inst.queue("maildrop") == []
    finally:
        inst.stop()


def test_end_to_end_sendmail_cleanup_qmgr_virtual(inst_backend):
    """qmgr routes virtual_mailbox_domains to virtual_transport by itself."""
    inst = Instance(inst_backend[0], inst_backend[1], with_qmgr=True)
    inst.start()
    try:
        inst.sendmail("-f", SENDER, "info@a.example", "bob@b.example", "x@c.example",
                      input="Subject: all the way\n\nhello\n")
        assert wait_for(lambda: inst.messages("ann@a.example") and inst.messages("cat@b.example")
                        and os.path.exists(os.path.join(inst.vbase, "b.example", "bob"))
                        and not inst.queue("incoming") and not inst.queue("active"), 20), inst.log()
        with open(os.path.join(inst.vbase, "b.example", "bob")) as f:
            assert f.read().count("Subject: all the way") == 2  # for itself and for x@c.example
        assert inst.queue("deferred") == [] and inst.queue("hold") == []
        assert "relay=virtual, status=sent" in inst.log()
    finally:
        inst.stop()


def test_one_user_database_for_delivery_and_login(inst_backend):
    """A user made by postern user gets mail through virtual and logs in through auth."""
    from test_auth import AuthConnection
    inst = Instance(inst_backend[0], inst_backend[1], with_auth=True)
    inst.start()
    try:
        r = inst.run("postern", "-c", inst.confdir, "user", "add", "eve@a.example", "-p", input="eve's secret\n")
        assert r.returncode == 0, r.stderr
        time.sleep(1.1)  # a hash: table is checked for a rebuild once a second
        path = inst.queue_message(["eve@a.example"])
        assert inst.deliver(path)["eve@a.example"][:2] == ("ok", "2.0.0")
        socket_path = os.path.join(inst.spool, "private", "auth")
        assert wait_for(lambda: os.path.exists(socket_path)), inst.log()
        c = AuthConnection(socket_path)
        assert (c.verify("Eve@a.example", "eve's secret")["status"], c.verify("eve@a.example", "x")["status"]) \
            == ("ok", "fail")
        c.close()
        assert inst.run("postern", "-c", inst.confdir, "user", "del", "eve@a.example").returncode == 0
        time.sleep(1.1)
        c = AuthConnection(socket_path)
        assert c.verify("eve@a.example", "eve's secret")["status"] == "fail"
        c.close()
        assert "eve's secret" not in inst.log()
    finally:
        inst.stop()


@pytest.fixture(params=["hash", "mysql"])
def inst_backend(request):
    return request.param, request.getfixturevalue("mariadb_server") if request.param == "mysql" else None


@pytest.mark.skipif(not ROOT, reason="needs root to deliver as another user")
def test_owner_below_virtual_minimum_uid_is_deferred_and_nothing_written():
    inst = Instance("hash")
    with open(os.path.join(inst.confdir, "main.cf"), "a") as f:
        f.write("virtual_minimum_uid = %d\n" % (VUID + 1))
    inst.start()
    try:
        path = inst.queue_message(["ann@a.example"])
        status, dsn, text = inst.deliver(path)["ann@a.example"]
        assert (status, dsn) == ("defer", "4.3.0")
        assert text == "uid %d is below virtual_minimum_uid %d" % (VUID, VUID + 1)
        assert not os.path.exists(inst.maildir("ann@a.example"))
    finally:
        inst.stop()


# --- postern user / postern domain ---------------------------------------------------

class Admin:
    """postern user/domain against one backend; db_state() is everything stored."""

    def __init__(self, backend, tmp_path, db=None):
        self.backend, self.db = backend, db
        self.confdir = tmp_path / "etc"
        self.confdir.mkdir()
        if backend == "hash":
            self.dir = tmp_path / "users"
            self.dir.mkdir()
            spec = "hash:%s" % self.dir
        else:
            with open(os.path.join(TOP, "conf", "mysql-schema.sql")) as f:
                db.sql("DROP TABLE IF EXISTS aliases, users, domains;\n" + f.read(), database=db.database)
            cf = tmp_path / "admin.cf"
            cf.write_text("hosts = unix:%s\nuser = root\npassword =\ndbname = %s\n" % (db.socket, db.database))
            spec = "mysql:%s" % cf
        (self.confdir / "main.cf").write_text("virtual_user_database = %s\n" % spec)

    def __call__(self, *args, input=None):
        return subprocess.run([os.path.join(TOP, os.environ.get("BUILD", "build"), "bin", "postern"),
                               "-c", str(self.confdir)] + list(args),
                              input=input, capture_output=True, text=True, timeout=60)

    def password_hash(self, address):
        if self.backend == "hash":
            for line in (self.dir / "vpasswd").read_text().splitlines():
                if line.startswith(address + " "):
                    return line.split(" ", 1)[1]
            return None
        out = self.db.sql("SELECT password FROM users WHERE email = '%s'" % address, database=self.db.database)
        return out.strip() or None

    def db_state(self):
        if self.backend == "hash":
            return {p.name: p.read_bytes() for p in sorted(self.dir.iterdir())}
        return self.db.sql("SELECT * FROM domains ORDER BY domain; SELECT * FROM users ORDER BY email;",
                           database=self.db.database)


@pytest.fixture(params=["hash", "mysql"])
def admin(request, tmp_path):
    db = request.getfixturevalue("mariadb_server") if request.param == "mysql" else None
    return Admin(request.param, tmp_path, db)


def check_crypt(password, stored):
    import crypt  # libxcrypt underneath: yescrypt as the auth service checks it
    return crypt.crypt(password, stored) == stored


def test_user_admin_adds_lists_changes_and_deletes(admin):
    assert admin("domain", "add", "A.example").returncode == 0
    assert admin("domain", "add", "b.example").returncode == 0
    assert admin("domain", "list").stdout == "a.example\nb.example\n"
    r = admin("user", "add", "Ann@A.example", "-p", "-q", "5000", input="correct horse\n")
    assert r.returncode == 0, r.stderr
    assert "correct horse" not in r.stdout + r.stderr
    r = admin("user", "add", "bob@b.example", "-p", "-m", "b.example/bob", "-s", "sha512-crypt", input="pw2\n")
    assert r.returncode == 0, r.stderr
    assert admin("user", "list").stdout == "ann@a.example a.example/ann/ 5000\nbob@b.example b.example/bob 0\n"
    assert admin("user", "list", "b.example").stdout == "bob@b.example b.example/bob 0\n"
    ann = admin.password_hash("ann@a.example")
    assert ann.startswith("$y$") and check_crypt("correct horse", ann)
    assert admin.password_hash("bob@b.example").startswith("$6$")

    r = admin("user", "passwd", "ann@a.example", "-p", input="battery staple\n")
    assert r.returncode == 0, r.stderr
    assert check_crypt("battery staple", admin.password_hash("ann@a.example"))
    assert admin("user", "quota", "ann@a.example", "0").returncode == 0
    assert admin("user", "list", "a.example").stdout == "ann@a.example a.example/ann/ 0\n"

    assert admin("user", "del", "bob@b.example").returncode == 0
    assert admin("user", "list").stdout == "ann@a.example a.example/ann/ 0\n"
    assert admin.password_hash("bob@b.example") is None
    assert admin("domain", "del", "b.example").returncode == 0
    assert admin("domain", "list").stdout == "a.example\n"


@pytest.mark.parametrize("args,input,message", [
    (("domain", "add", "a.example"), None, "domain a.example already exists"),
    (("domain", "del", "nowhere.example"), None, "no such domain: nowhere.example"),
    (("domain", "del", "a.example"), None, "domain a.example still has 1 user; delete them first"),
    (("domain", "add", "bad domain"), None, "bad domain name \"bad domain\""),
    (("user", "add", "ANN@a.example", "-p"), "pw\n", "user ann@a.example already exists"),
    (("user", "add", "joe@c.example", "-p"), "pw\n", "unknown domain c.example: add it first with postern domain add"),
    (("user", "add", "joe", "-p"), "pw\n", "bad address \"joe\": expected user@domain"),
    (("user", "add", "joe@a.example", "-p", "-m", "../etc/"), "pw\n", "bad mailbox \"../etc/\""),
    (("user", "add", "joe@a.example", "-p"), "", "no password set"),
    (("user", "add", "joe@a.example", "-p", "-q", "lots"), "pw\n", "bad quota \"lots\""),
    (("user", "del", "joe@a.example"), None, "no such user: joe@a.example"),
    (("user", "passwd", "joe@a.example", "-p"), "pw\n", "no such user: joe@a.example"),
    (("user", "quota", "joe@a.example", "5"), None, "no such user: joe@a.example"),
])
def test_user_admin_refusals_change_nothing(admin, args, input, message):
    assert admin("domain", "add", "a.example").returncode == 0
    assert admin("user", "add", "ann@a.example", "-p", input="pw\n").returncode == 0
    before = admin.db_state()
    r = admin(*args, input=input)
    assert r.returncode == 1, r.stderr
    assert message in r.stderr
    assert admin.db_state() == before


def test_user_admin_usage_and_unset_database(tmp_path):
    admin = Admin("hash", tmp_path)
    r = admin("user", "frobnicate", "x@y")
    assert r.returncode == 64 and "usage: postern user" in r.stderr
    r = admin("user", "del", "x@a.example", "-z")
    assert r.returncode == 64
    (admin.confdir / "main.cf").write_text("")
    r = admin("domain", "list")
    assert r.returncode == 78 and "virtual_user_database: not set" in r.stderr


def test_users_made_by_postern_user_receive_mail(tmp_path):
    inst = Instance("hash")
    try:
        # The same files virtual reads, written by postern user.
        with open(os.path.join(inst.confdir, "main.cf"), "a") as f:
            f.write("virtual_user_database = hash:%s\n" % inst.confdir)
        for name in ("vdomains", "vmailbox", "vquota"):
            for suffix in ("", ".db"):
                os.unlink(os.path.join(inst.confdir, name + suffix))
        inst.start()
        assert inst.run("postern", "-c", inst.confdir, "domain", "add", "new.example").returncode == 0
        r = inst.run("postern", "-c", inst.confdir, "user", "add", "dan@new.example", "-p", input="pw\n")
        assert r.returncode == 0, r.stderr
        time.sleep(1.1)  # a hash: table is checked for a rebuild once a second
        path = inst.queue_message(["dan@new.example"])
        assert inst.deliver(path)["dan@new.example"][:2] == ("ok", "2.0.0")
        assert len(os.listdir(os.path.join(inst.vbase, "new.example", "dan", "new"))) == 1
    finally:
        inst.stop()


def test_postern_check_refuses_a_domain_in_two_classes(tmp_path):
    admin = Admin("hash", tmp_path)
    (admin.confdir / "main.cf").write_text(
        "queue_directory = %s\nmydestination = localhost, a.example\nvirtual_mailbox_domains = a.example\n"
        % (tmp_path / "spool"))
    (admin.confdir / "master.cf").write_text("")
    r = admin("check")
    assert r.returncode == 1
    assert "main.cf:2: domain a.example is in both mydestination and virtual_mailbox_domains" in r.stderr
    assert not (tmp_path / "spool").exists()
