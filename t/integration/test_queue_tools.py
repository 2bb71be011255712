"""postqueue, postsuper and postcat over a spool written here, in Python, straight from
the record format of docs/queue.md: the tools reading these files also checks that
the document is right. Queue IDs are made as lib/mail/queue_id.h describes, from the
arrival time and the file's inode."""
import json
import os
import struct
import time

import pytest

DIGITS = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxy"
FOLDERS = ["maildrop", "incoming", "active", "deferred", "hold", "corrupt", "bounce", "defer", "trace",
           "private", "public", "pid"]


def fixed(value, width):
    out = ""
    for _ in range(width):
        out = DIGITS[value % 51] + out
        value //= 51
    return out


def queue_id(seconds, micros, inode):
    digits = ""
    while True:
        digits = DIGITS[inode % 51] + digits
        inode //= 51
        if inode == 0:
            break
    return fixed(seconds, 6) + fixed(micros, 4) + "z" + digits


def record(kind, data=b""):
    return kind.encode() + struct.pack(">I", len(data)) + data


def rcpt(address, done=False, orcpt="", notify=0):
    o = orcpt.encode()
    return record("D" if done else "R", struct.pack(">BH", notify, len(o)) + o + address.encode())


def queue_file(sender, recipients, content, arrival, attrs=(), extracted=()):
    """The bytes of a complete queue file; recipients are record() results."""
    head = record("T", struct.pack(">QI", arrival, 0)) + record("F", sender.encode())
    head += b"".join(record("A", n.encode() + b"\0" + v.encode()) for n, v in attrs)
    head += b"".join(recipients)
    size_len = 5 + 28
    content_offset = len(record("V", b"\0\0\0\1")) + size_len + len(head) + 5
    body = content.find(b"\n\n")
    body_offset = content_offset + (body + 2 if body >= 0 else len(content))
    count = len(recipients) + len(extracted)
    size = record("S", struct.pack(">QQQI", content_offset, len(content), body_offset, count))
    data = record("V", struct.pack(">I", 1)) + size + head + record("C", content) + b"".join(extracted) + record("Z")
    assert data.index(content) == content_offset
    return data


class Spool:
    def __init__(self, path):
        self.path = str(path)
        for f in FOLDERS:
            os.makedirs(os.path.join(self.path, f), exist_ok=True)
        self.arrival = 1700000000

    def add(self, queue, sender="alice@example.org", recipients=None, content=b"Subject: hi\n\nhello\n",
            arrival=None, mode=0o700, **kw):
        if arrival is None:
            self.arrival += 60
            arrival = self.arrival
        if recipients is None:
            recipients = [rcpt("bob@example.net")]
        tmp = os.path.join(self.path, queue, "tmp.%d.%d" % (os.getpid(), arrival))
        with open(tmp, "wb") as f:
            f.write(queue_file(sender, recipients, content, arrival, **kw))
        os.chmod(tmp, mode)
        qid = queue_id(arrival, 0, os.stat(tmp).st_ino)
        os.rename(tmp, os.path.join(self.path, queue, qid))
        return qid

    def log(self, folder, qid, text):
        with open(os.path.join(self.path, folder, qid), "w") as f:
            f.write(text)

    def where(self, qid):
        return [f for f in FOLDERS if os.path.exists(os.path.join(self.path, f, qid))]

    def snapshot(self):
        out = {}
        for top, dirs, files in os.walk(os.path.dirname(self.path)):
            for name in files:
                p = os.path.join(top, name)
                out[p] = open(p, "rb").read()
        return out


@pytest.fixture
def spool(tmp_path, run):
    s = Spool(tmp_path / "spool")
    run.write_main_cf(f"queue_directory = {s.path}\n")
    return s


def short_time(t):
    return time.strftime("%a %b %e %H:%M:%S", time.localtime(t))


def defer_log(rcpt_address, reason):
    return f"recipient={rcpt_address}\nstatus=4.4.1\naction=delayed\nreason={reason}\n\n"


def test_mailq_lists_every_queue_with_marks_reasons_and_undone_recipients(run, spool):
    inc = spool.add("incoming", sender="", content=b"x" * 2000)
    act = spool.add("active", recipients=[rcpt("a1@example.net"), rcpt("a2@example.net")])
    dfr = spool.add("deferred", recipients=[rcpt("done@example.net", done=True), rcpt("late@example.net"),
                                            rcpt("other@example.net")])
    spool.log("defer", dfr, defer_log("late@example.net", "connect to mx.example.net[192.0.2.1]:25: refused"))
    hld = spool.add("hold", sender="carol@example.org")
    r = run("postqueue", "-p")
    assert r.returncode == 0, r.stderr
    pad = " " * 41
    t = {q: short_time(spool.arrival - 60 * n) for n, q in enumerate([hld, dfr, act, inc])}
    assert r.stdout == (
        "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n"
        f"{hld}!       19 {t[hld]}  carol@example.org\n{pad}bob@example.net\n\n"
        f"{inc}      2000 {t[inc]}  MAILER-DAEMON\n{pad}bob@example.net\n\n"
        f"{act}*       19 {t[act]}  alice@example.org\n{pad}a1@example.net\n{pad}a2@example.net\n\n"
        f"{dfr}        19 {t[dfr]}  alice@example.org\n"
        "(connect to mx.example.net[192.0.2.1]:25: refused)\n"
        f"{pad}late@example.net\n{pad}other@example.net\n\n"
        "-- 2 Kbytes in 4 Requests.\n")
    assert "done@example.net" not in r.stdout
    # The IDs mailq shows are the names postcat and postsuper take.
    for qid in (inc, act, dfr, hld):
        assert run("postcat", "-q", "-e", qid).returncode == 0


def test_json_lines_parse_and_match(run, spool):
    dfr = spool.add("deferred", sender="", recipients=[rcpt("d@example.net", done=True), rcpt("w@example.net")])
    spool.log("defer", dfr, defer_log("w@example.net", 'greylisted "try later"'))
    act = spool.add("active", content=b"Subject: a\n\n" + b"y" * 100)
    r = run("postqueue", "-j")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert rows == [
        {"queue_name": "active", "queue_id": act, "arrival_time": spool.arrival, "message_size": 112,
         "sender": "alice@example.org", "recipients": [{"address": "bob@example.net"}]},
        {"queue_name": "deferred", "queue_id": dfr, "arrival_time": spool.arrival - 60, "message_size": 19,
         "sender": "", "recipients": [{"address": "w@example.net", "delay_reason": 'greylisted "try later"'}]},
    ]


def test_empty_queue(run, spool):
    r = run("postqueue", "-p")
    assert (r.returncode, r.stdout) == (0, "Mail queue is empty\n")
    r = run("postqueue", "-j")
    assert (r.returncode, r.stdout) == (0, "")
    # Temporary files and foreign names are not messages.
    open(os.path.join(spool.path, "incoming", "tmp.1.2"), "w").close()
    open(os.path.join(spool.path, "deferred", "README"), "w").close()
    assert run("postqueue", "-p").stdout == "Mail queue is empty\n"


def test_unreadable_file_is_reported_and_skipped(run, spool):
    good = spool.add("deferred")
    bad = spool.add("deferred")
    path = os.path.join(spool.path, "deferred", bad)
    os.truncate(path, os.path.getsize(path) - 5)  # no END
    r = run("postqueue", "-p")
    assert r.returncode == 0
    assert good in r.stdout and bad not in r.stdout
    assert f"postqueue: warning: {path}: no END record" in r.stderr
    assert r.stdout.endswith("-- 0 Kbytes in 1 Request.\n")


def test_postsuper_delete_one_and_all_of_a_queue(run, spool):
    d1 = spool.add("deferred")
    d2 = spool.add("deferred")
    h = spool.add("hold")
    for folder in ("bounce", "defer", "trace"):
        spool.log(folder, d1, "recipient=bob@example.net\nreason=x\n\n")
    spool.log("defer", h, "recipient=bob@example.net\nreason=x\n\n")
    r = run("postsuper", "-d", d1)
    assert r.returncode == 0, r.stderr
    assert r.stderr.endswith("postsuper: Deleted: 1 message\n")
    assert spool.where(d1) == []  # the file and its three status logs
    assert spool.where(d2) == ["deferred"]
    r = run("postsuper", "-d", "ALL", "deferred")
    assert r.returncode == 0, r.stderr
    assert "postsuper: Deleted: 1 message\n" in r.stderr
    assert spool.where(d2) == [] and spool.where(h) == ["hold", "defer"]
    r = run("postsuper", "-d", "ALL")
    assert "postsuper: Deleted: 1 message\n" in r.stderr
    assert spool.where(h) == []
    assert run("postqueue", "-p").stdout == "Mail queue is empty\n"


def test_postsuper_unknown_id_is_reported(run, spool):
    keep = spool.add("deferred")
    gone = queue_id(spool.arrival, 5, 12345)
    r = run("postsuper", "-d", gone)
    assert r.returncode == 0
    assert f"postsuper: warning: {gone}: no such message" in r.stderr
    assert "postsuper: Deleted: 0 messages" in r.stderr
    # Named queue that does not hold it.
    r = run("postsuper", "-d", keep, "hold")
    assert f"postsuper: warning: {keep}: no such message" in r.stderr
    assert spool.where(keep) == ["deferred"]


def test_postsuper_hold_and_release_round_trip(run, spool):
    ids = [spool.add("deferred"), spool.add("incoming"), spool.add("active")]
    r = run("postsuper", "-h", ids[0])
    assert r.returncode == 0, r.stderr
    assert "postsuper: Placed on hold: 1 message\n" in r.stderr
    assert spool.where(ids[0]) == ["hold"]
    assert f"{ids[0]}!" in run("postqueue", "-p").stdout
    r = run("postsuper", "-h", "-", input="\n".join(ids[1:]) + "\n")
    assert "postsuper: Placed on hold: 2 messages\n" in r.stderr
    assert all(spool.where(i) == ["hold"] for i in ids)
    r = run("postsuper", "-H", "ALL")
    assert r.returncode == 0, r.stderr
    assert "postsuper: Released from hold: 3 messages\n" in r.stderr
    assert all(spool.where(i) == ["deferred"] for i in ids)
    assert "!" not in run("postqueue", "-p").stdout
    r = run("postsuper", "-h", ids[0], "hold")  # hold is not a source for -h
    assert r.returncode == 64 and "does not apply to the hold queue" in r.stderr


def test_postsuper_requeue(run, spool):
    d = spool.add("deferred", recipients=[rcpt("x@example.net", done=True), rcpt("y@example.net")])
    spool.log("defer", d, defer_log("y@example.net", "later"))
    spool.log("bounce", d, "recipient=z\n\n")
    h = spool.add("hold")
    r = run("postsuper", "-r", d)
    assert r.returncode == 0, r.stderr
    assert "postsuper: Requeued: 1 message\n" in r.stderr
    assert spool.where(d) == ["incoming", "bounce"]  # the stale defer log is gone
    r = run("postcat", "-q", "-e", d)
    assert "done_recipient: x@example.net\nrecipient: y@example.net\n" in r.stdout
    r = run("postsuper", "-r", "ALL")
    assert "postsuper: Requeued: 2 messages\n" in r.stderr
    assert spool.where(h) == ["incoming"]


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", ".", "", "0000000000z1/../../x", "ALL/.."])
def test_postsuper_refuses_path_tricks_and_changes_nothing(run, spool, bad):
    victim = spool.add("deferred")
    # A file the trick would reach: the spool's parent and a queue ID-like name.
    open(os.path.join(os.path.dirname(spool.path), "x"), "w").close()
    before = spool.snapshot()
    for args, stdin in ((["-d", bad], None), (["-d", victim, "-h", bad], None), (["-H", bad], None),
                        (["-r", bad], None), (["-d", "-"], f"{victim}\n{bad}/y\n"), (["-d", bad, "ALL"], None)):
        r = run("postsuper", *args, input=stdin)
        assert r.returncode == 64, (args, r.stderr)
        assert "invalid queue ID" in r.stderr or "unknown queue" in r.stderr, r.stderr
        assert "Deleted" not in r.stderr
        assert spool.snapshot() == before
    r = run("postcat", "-q", bad or "x/y")
    assert r.returncode == 64 and "invalid queue ID" in r.stderr
    r = run("postqueue", "-i", bad or "..")
    assert r.returncode == 64 and "invalid queue ID" in r.stderr


def test_postsuper_usage(run, spool):
    r = run("postsuper")
    assert r.returncode == 64 and "no action given" in r.stderr
    r = run("postsuper", "-d", "ALL", "nosuchqueue")
    assert r.returncode == 64 and "unknown queue: nosuchqueue" in r.stderr


MESSAGE = b"From: alice@example.org\nTo: bob@example.net\nSubject: test\n\nline one\nline two\n"


def full_message(spool):
    return spool.add(
        "deferred", sender="alice@example.org",
        recipients=[rcpt("bob@example.net", done=True), rcpt("carol@example.net", orcpt="rfc822;c@example.net",
                                                              notify=4 | 8)],
        attrs=[("client_address", "192.0.2.7"), ("helo_name", "client.example")], content=MESSAGE,
        extracted=[rcpt("dave@example.net")])


def test_postcat_full_and_parts(run, spool):
    qid = full_message(spool)
    t = time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(spool.arrival))
    r = run("postcat", "-q", qid)
    assert r.returncode == 0, r.stderr
    label = f"deferred/{qid}"
    assert r.stdout == (
        f"*** ENVELOPE RECORDS {label} ***\n"
        f"message_size: {len(MESSAGE)}\n"
        f"arrival_time: {t}\n"
        "sender: alice@example.org\n"
        "named_attribute: client_address=192.0.2.7\n"
        "named_attribute: helo_name=client.example\n"
        "done_recipient: bob@example.net\n"
        "recipient: carol@example.net\n"
        "original_recipient: rfc822;c@example.net\n"
        "notify: FAILURE,DELAY\n"
        f"*** MESSAGE CONTENTS {label} ***\n"
        + MESSAGE.decode() +
        f"*** HEADER EXTRACTED {label} ***\n"
        "recipient: dave@example.net\n"
        f"*** MESSAGE FILE END {label} ***\n")
    assert run("postcat", "-q", "-h", qid).stdout == "From: alice@example.org\nTo: bob@example.net\nSubject: test\n"
    assert run("postcat", "-q", "-b", qid).stdout == "line one\nline two\n"
    assert run("postcat", "-q", "-hb", qid).stdout == MESSAGE.decode()
    e = run("postcat", "-q", "-e", qid).stdout
    assert "MESSAGE CONTENTS" not in e and "line one" not in e
    assert e.startswith(f"*** ENVELOPE RECORDS {label} ***\n") and e.endswith(f"*** MESSAGE FILE END {label} ***\n")
    # A file path works too, labelled by the path.
    path = os.path.join(spool.path, "deferred", qid)
    r = run("postcat", "-b", path)
    assert (r.returncode, r.stdout) == (0, "line one\nline two\n")


def test_postcat_corrupt_and_missing(run, spool):
    good = spool.add("deferred")
    cut = spool.add("deferred")
    path = os.path.join(spool.path, "deferred", cut)
    os.truncate(path, os.path.getsize(path) - 5)
    r = run("postcat", "-q", cut)
    assert r.returncode != 0
    assert f"postcat: error: {path}: no END record (incomplete)" in r.stderr
    assert r.stdout == ""
    # A bad record type: corrupt, and the good file named with it is still shown.
    junk = spool.add("hold")
    jpath = os.path.join(spool.path, "hold", junk)
    data = bytearray(open(jpath, "rb").read())
    data[9 + 33] = ord("?")  # the TIME record's type byte
    open(jpath, "wb").write(bytes(data))
    r = run("postcat", "-q", "-e", junk, good)
    assert r.returncode != 0
    assert f"postcat: error: {jpath}: record 2 at offset 42: unknown record type 0x3f (corrupt)" in r.stderr
    assert f"*** ENVELOPE RECORDS deferred/{good} ***" in r.stdout
    # Without the owner-execute bit a file is not complete.
    unfinished = spool.add("incoming", mode=0o600)
    r = run("postcat", "-q", unfinished)
    assert r.returncode != 0 and "no owner-execute bit (incomplete)" in r.stderr
    # Not a queue file at all, and no such message.
    other = os.path.join(spool.path, "notes.txt")
    with open(other, "w") as f:
        f.write("hello\n")
    os.chmod(other, 0o700)
    r = run("postcat", other)
    assert r.returncode != 0 and other in r.stderr
    gone = queue_id(1, 0, 1)
    r = run("postcat", "-q", gone)
    assert r.returncode != 0 and f"postcat: error: {gone}: no such message in any queue" in r.stderr


def test_flush_needs_the_queue_manager(run, spool):
    for args in (["-f"], ["-s", "example.net"], ["-i", queue_id(1, 0, 1)]):
        r = run("postqueue", *args)
        assert r.returncode == 75, (args, r.stderr)
        assert "postqueue: fatal: Cannot flush mail queue - mail system is down" in r.stderr
    r = run("postqueue", "-p", "-f")
    assert r.returncode == 64 and "exclude each other" in r.stderr


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to run as another user")
def test_postsuper_only_for_root_mail_owner_or_the_spool_owner():
    import shutil
    import subprocess
    import tempfile
    from conftest import program
    top = tempfile.mkdtemp(prefix="postern-super-")  # an ordinary user must be able to reach it
    try:
        os.chmod(top, 0o755)
        s = Spool(os.path.join(top, "spool"))
        qid = s.add("deferred")
        with open(os.path.join(top, "main.cf"), "w") as f:
            f.write(f"queue_directory = {s.path}\nmail_owner = root\n")

        def as_nobody(*args):
            return subprocess.run([program("postsuper"), *args], capture_output=True, text=True,
                                  env=dict(os.environ, POSTERN_CONFIG_DIR=top), preexec_fn=lambda: os.setuid(65534))
        r = as_nobody("-d", qid)
        assert r.returncode == 77 and "reserved for the superuser" in r.stderr
        assert s.where(qid) == ["deferred"]
        for f in FOLDERS:  # an instance started by that user owns its queues
            os.chown(os.path.join(s.path, f), 65534, -1)
        os.chown(s.path, 65534, -1)
        r = as_nobody("-d", qid)
        assert r.returncode == 0, r.stderr
        assert s.where(qid) == []
    finally:
        shutil.rmtree(top)
