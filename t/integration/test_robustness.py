"""The whole local mail system under stress and misuse, with real processes as root
and real users: hold, release, requeue and flush end to end; SIGKILL of each
daemon, master included, while 500 messages flow (each must arrive exactly once;
and the queue must end empty); malformed and hostile input (refused messages go
back to their sender); an unwritable mailbox; a full queue file system; a
missing maildrop.  Ordinary users' submissions are in test_postdrop.py."""
import collections
import errno
import os
import pwd
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import program, wait_for
from instance import ROOT
from test_qmgr_local import MASTER_CF, Instance

pytestmark = pytest.mark.skipif(not ROOT, reason="needs root: real users, mounts, other users' mailboxes")


def configure(inst, **params):
    """Sets main.cf parameters (replacing the Instance's own values)."""
    lines = [l for l in inst.main_cf.splitlines() if l.split(" = ")[0] not in params]
    inst.main_cf = "\n".join(lines + ["%s = %s" % kv for kv in params.items()]) + "\n"
    with open(os.path.join(inst.confdir, "main.cf"), "w") as f:
        f.write(inst.main_cf)


@pytest.fixture
def inst():
    i = Instance("maildir")
    yield i
    i.stop()


@pytest.fixture
def slow_retry(inst):
    """A started instance whose deferred mail is not retried by itself during a test."""
    configure(inst, minimal_backoff_time="600s", maximal_backoff_time="1200s")
    inst.start()
    return inst


def wait_delivered(inst, user, count, timeout=20):
    assert wait_for(lambda: len(inst.messages(user)) >= count and inst.queued() == 0, timeout), inst.log()
    time.sleep(1)  # nothing more arrives
    msgs = inst.messages(user)
    assert len(msgs) == count, msgs
    return msgs


def postsuper(inst, *args):
    r = inst.run("postsuper", *args)
    assert r.returncode == 0, r.stderr
    return r.stderr


def lock_maildir(inst, user):
    """Makes user's Maildir unusable to its owner (as a wrong chmod would): delivery must wait."""
    pw = pwd.getpwnam(user)
    maildir = os.path.join(pw.pw_dir, "Maildir")
    os.makedirs(maildir, exist_ok=True)
    os.chown(maildir, pw.pw_uid, pw.pw_gid)
    os.chmod(maildir, 0)
    return maildir


def deferred_one(inst):
    assert wait_for(lambda: inst.queue("deferred"), 20), inst.log()
    [qid] = inst.queue("deferred")
    return qid


# -- hold, release, requeue, flush ------------------------------------------------

def test_held_incoming_message_waits_until_released_and_flushed(inst):
    configure(inst, minimal_backoff_time="600s", maximal_backoff_time="1200s")
    user = inst.users[0]
    # No queue manager yet: the message stays in incoming, where postsuper -h takes it.
    with open(os.path.join(inst.confdir, "master.cf"), "w") as f:
        f.write("".join(l + "\n" for l in MASTER_CF.splitlines() if not l.startswith("qmgr")))
    inst.start()
    inst.sendmail(user, input="Subject: held\n\nwait for it\n")
    assert wait_for(lambda: inst.queue("incoming") and not inst.queue("maildrop"), 15), inst.log()
    [qid] = inst.queue("incoming")
    assert "Placed on hold: 1 message" in postsuper(inst, "-h", qid)
    assert inst.queue("hold") == [qid] and inst.queue("incoming") == []
    r = inst.run("postqueue", "-p")
    assert re.search(r"^%s!" % qid, r.stdout, re.M), r.stdout
    # The queue manager arrives and leaves the held message alone.
    with open(os.path.join(inst.confdir, "master.cf"), "w") as f:
        f.write(MASTER_CF)
    r = inst.run("postern", "-c", inst.confdir, "reload")
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: inst.pids("qmgr"), 10), inst.log()
    r = inst.run("postqueue", "-f")
    assert r.returncode == 0, r.stderr
    time.sleep(2.5)
    assert inst.messages(user) == [] and inst.queue("hold") == [qid]
    assert "Released from hold: 1 message" in postsuper(inst, "-H", qid)
    assert inst.queue("hold") == []
    r = inst.run("postqueue", "-f")
    assert r.returncode == 0, r.stderr
    [msg] = wait_delivered(inst, user, 1)
    assert "Subject: held\n" in msg and "id %s;" % qid in msg


def test_held_deferred_message_is_not_retried_until_released(inst):
    user = inst.users[0]
    inst.start()  # retries every second or two
    maildir = lock_maildir(inst, user)
    inst.sendmail(user, input="Subject: locked out\n\nx\n")
    qid = deferred_one(inst)
    postsuper(inst, "-h", qid)
    os.chmod(maildir, 0o700)
    time.sleep(3)  # more than the back-off: only the hold keeps it
    assert inst.messages(user) == [] and inst.queue("hold") == [qid]
    postsuper(inst, "-H", qid)
    wait_delivered(inst, user, 1)


def test_released_message_does_not_wait_out_its_old_back_off(slow_retry):
    inst = slow_retry
    user = inst.users[0]
    maildir = lock_maildir(inst, user)
    inst.sendmail(user, input="Subject: released\n\nx\n")
    qid = deferred_one(inst)  # next attempt in 600 s
    postsuper(inst, "-h", qid)
    os.chmod(maildir, 0o700)
    postsuper(inst, "-H", qid)
    [msg] = wait_delivered(inst, user, 1, timeout=10)  # the next scan of deferred (queue_run_delay 1s)
    assert "Subject: released\n" in msg


def test_unwritable_mailbox_defers_then_requeue_delivers_once(slow_retry):
    inst = slow_retry
    user = inst.users[0]
    maildir = lock_maildir(inst, user)
    inst.sendmail(user, input="Subject: first\n\n1\n")
    qid = deferred_one(inst)
    r = inst.run("postqueue", "-p")
    assert qid in r.stdout and "Permission denied" in r.stdout, r.stdout
    os.chmod(maildir, 0o700)
    time.sleep(2)
    assert inst.queue("deferred") == [qid]  # the back-off is long: it waits
    assert inst.messages(user) == []
    assert "Requeued: 1 message" in postsuper(inst, "-r", qid)
    [msg] = wait_delivered(inst, user, 1)
    assert "Subject: first\n" in msg


def test_flush_delivers_deferred_mail_at_once(slow_retry):
    inst = slow_retry
    user = inst.users[0]
    maildir = lock_maildir(inst, user)
    inst.sendmail(user, input="Subject: flushed\n\nx\n")
    deferred_one(inst)
    os.chmod(maildir, 0o700)
    r = inst.run("postqueue", "-f")
    assert r.returncode == 0, r.stderr
    [msg] = wait_delivered(inst, user, 1, timeout=10)
    assert "Subject: flushed\n" in msg


# -- SIGKILL of each daemon while mail flows ------------------------------------------

def seq_numbers(inst, user):
    """The X-Seq header of every message in user's Maildir."""
    return [int(m.split("\nX-Seq: ")[1].split("\n")[0]) for m in inst.messages(user)]


def explain(inst, user, seqs):
    """The log lines of the queue IDs that carried these X-Seq numbers."""
    ids = set()
    for m in inst.messages(user):
        if int(m.split("\nX-Seq: ")[1].split("\n")[0]) in seqs:
            ids.add(m.split("\tid ")[1].split(";")[0])
    return "\n".join(l for l in inst.log().splitlines() if any(i in l for i in ids) or "master" in l)


@pytest.mark.parametrize("victim", ["pickup", "cleanup", "qmgr", "local", "master"])
def test_daemon_killed_while_500_messages_flow_each_arrives_once(inst, victim):
    """SIGKILL of one of its processes (three times, 0.3 s apart; master once, then postern start) while
    eight submitters send 500 messages: each arrives once, the queue ends empty."""
    total, submitters = 500, 8
    user = inst.users[0]
    inst.start()
    failures = []

    def submit(first):
        for n in range(first, total, submitters):
            r = inst.run("sendmail", user, input="Subject: flow %d\nX-Seq: %d\n\nbody %d\n" % (n, n, n))
            if r.returncode != 0:
                failures.append((n, r.returncode, r.stderr))

    threads = [threading.Thread(target=submit, args=(j,)) for j in range(submitters)]
    for t in threads:
        t.start()
    try:
        assert wait_for(lambda: inst.messages(user), 20), inst.log()
        if victim == "master":
            [master] = inst.pids("master")
            os.kill(master, signal.SIGKILL)
            # Its children go with it, and with them their listeners.
            assert wait_for(lambda: not any(inst.pids(d) for d in ("master", "pickup", "cleanup", "qmgr")), 5)
            r = inst.run("postern", "-c", inst.confdir, "start")
            assert r.returncode == 0, r.stderr + inst.log()
        else:
            for _ in range(3):
                # One process at a time; it may exit by itself between the listing and the kill.
                found = []
                assert wait_for(lambda: found.extend(inst.pids(victim)) or found, 10), \
                    "%s is not running\n%s" % (victim, inst.log())
                try:
                    os.kill(min(found), signal.SIGKILL)
                except ProcessLookupError:
                    pass  # it finished just now
                time.sleep(0.3)
    finally:
        for t in threads:
            t.join()
    assert failures == []
    assert wait_for(lambda: len(inst.messages(user)) >= total and inst.queued() == 0, 90), \
        "%d delivered\n%s" % (len(inst.messages(user)), inst.log()[-3000:])
    time.sleep(2)
    counts = collections.Counter(seq_numbers(inst, user))
    assert sorted(counts) == list(range(total))
    twice = [n for n, c in counts.items() if c > 1]
    assert twice == [], explain(inst, user, twice)
    assert inst.queued() == 0
    assert len(inst.pids("master")) == 1


def test_master_killed_takes_its_children_along_and_starts_again(inst):
    user = inst.users[0]
    inst.start()
    inst.sendmail(user, input="Subject: before\n\nx\n")
    wait_delivered(inst, user, 1)
    children = {d: inst.pids(d) for d in ("pickup", "cleanup", "qmgr", "local")}
    assert children["qmgr"] and children["pickup"], children
    [master] = inst.pids("master")
    os.kill(master, signal.SIGKILL)
    # Left running, they would hold the listeners and the queue against the next master.
    assert wait_for(lambda: not any(inst.pids(d) for d in children), 5), {d: inst.pids(d) for d in children}
    r = inst.run("postern", "-c", inst.confdir, "start")
    assert r.returncode == 0, r.stderr + inst.log()
    inst.sendmail(user, input="Subject: after\n\nx\n")
    wait_delivered(inst, user, 2)
    assert len(inst.pids("master")) == 1 and master not in inst.pids("master")


# -- bad input -----------------------------------------------------------------------

def test_malformed_header_lines_are_delivered_as_text(inst):
    user = inst.users[0]
    inst.start()
    inst.sendmail(user, input="Subject: odd\nthis line is no header\nX-After: y\n\nbody\n")
    inst.sendmail(user, input="  starts with white space\nSubject: two\n\nbody two\n")
    inst.sendmail(user, input="Subject : space before colon\n\nbody three\n")
    msgs = wait_delivered(inst, user, 3)
    by_body = {m.rstrip("\n").rsplit("\n", 1)[-1]: m for m in msgs}
    assert set(by_body) == {"body", "body two", "body three"}, msgs
    for m in msgs:
        head, _ = m.split("\n\n", 1)
        assert "Received: by mail.example.com" in head and "Message-Id: <" in head, m
    # A line that is not a header ends the header: it and what follows are body text.
    odd = by_body["body"]
    assert "Subject: odd\n" in odd.split("\n\n", 1)[0]
    assert "this line is no header\nX-After: y\n" in odd.split("\n\n", 1)[1], odd
    assert "  starts with white space\n" in by_body["body two"]
    assert "Subject : space before colon\n" in by_body["body three"].split("\n\n", 1)[0]


def refused_and_returned(inst, text, why):
    """A message cleanup refuses for good: logged with its reason, returned to its
    sender with a notice, gone from maildrop, never in corrupt; mail still flows."""
    user = inst.users[0]
    inst.start()
    inst.sendmail("-f", user, user, input=text)
    assert wait_for(lambda: "sender non-delivery notification" in inst.log() and not inst.queue("maildrop"), 15), \
        inst.log()
    assert re.search(r"maildrop/\w+: .*rejected: 5\.6\.0 .*%s" % why, inst.log()), inst.log()
    [notice] = wait_delivered(inst, user, 1)
    assert "Undelivered Mail Returned to Sender" in notice and "5.6.0" in notice
    assert inst.queue("corrupt") == []
    inst.sendmail(user, input="Subject: clean\n\nok\n")
    msgs = wait_delivered(inst, user, 2)
    assert any("Subject: clean\n" in m for m in msgs)


def test_nul_byte_is_refused_and_returned_to_sender_and_mail_still_flows(inst):
    refused_and_returned(inst, "Subject: nul\n\nbefore\0after\n", "NUL")


def test_one_megabyte_header_line_is_refused_and_returned_to_sender(inst):
    refused_and_returned(inst, "Subject: long\nX-Long: " + "a" * (1 << 20) + "\n\nbody\n", "header")


def test_no_recipient_is_refused_and_nothing_is_queued(inst):
    inst.start()
    for args in ([], ["-t"]):
        r = inst.run("sendmail", *args, input="Subject: to nobody\n\nx\n")
        assert r.returncode == 64, r.stderr
        assert "ecipient addresses" in r.stderr  # "Recipient addresses must be ...", "No recipient addresses ..."
    time.sleep(1)
    assert inst.queued() == 0 and inst.queue("corrupt") == []
    assert os.listdir(os.path.join(inst.spool, "maildrop")) == []


def test_flush_when_the_queue_manager_hangs_up_at_once(inst):
    """qmgr takes the connection itself as the trigger and closes it unread:
    postqueue must not die of SIGPIPE writing its request."""
    public = os.path.join(inst.spool, "public")
    os.makedirs(public)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(os.path.join(public, "qmgr"))
    listener.listen(64)

    def hang_up():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed: the test is over
            conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    try:
        for _ in range(30):
            r = inst.run("postqueue", "-f")
            assert r.returncode == 0, (r.returncode, r.stderr)
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()


def test_missing_maildrop_is_a_temporary_failure_until_postern_check(inst):
    user = inst.users[0]
    inst.start()
    maildrop = os.path.join(inst.spool, "maildrop")
    os.rename(maildrop, maildrop + ".away")
    os.rmdir(maildrop + ".away")
    r = inst.run("sendmail", user, input="Subject: nowhere\n\nx\n")
    assert r.returncode == 75, r.stderr
    assert "maildrop" in r.stderr
    assert not os.path.exists(maildrop)
    r = inst.run("postern", "-c", inst.confdir, "check")
    assert os.path.isdir(maildrop), r.stdout + r.stderr
    inst.sendmail(user, input="Subject: back\n\nx\n")
    wait_delivered(inst, user, 1)


def fill(path):
    """Fills the file system of path; returns the filler file."""
    filler = os.path.join(path, "filler")
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
    finally:
        os.close(fd)
    return filler


@pytest.fixture
def tmpfs_spool(inst):
    os.makedirs(inst.spool)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", inst.spool],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + r.stderr)
    yield inst
    inst.run("postern", "-c", inst.confdir, "stop")
    wait_for(lambda: not inst.pids("master"), 5)
    subprocess.run(["umount", "-l", inst.spool], capture_output=True)


def test_full_queue_file_system_is_a_temporary_error_and_mail_flows_after(tmpfs_spool):
    inst = tmpfs_spool
    user = inst.users[0]
    inst.start()
    filler = fill(os.path.join(inst.spool, "pid"))  # a root-owned folder of the spool's file system
    r = inst.run("sendmail", user, input="Subject: no room\n\n" + "z" * 20000 + "\n")
    assert r.returncode == 75, r.stderr
    assert "error writing queue file" in r.stderr and "No space left on device" in r.stderr, r.stderr
    assert os.listdir(os.path.join(inst.spool, "maildrop")) == []  # nothing half-written
    assert inst.queued() == 0
    os.unlink(filler)
    inst.sendmail(user, input="Subject: room again\n\nok\n")
    [msg] = wait_delivered(inst, user, 1)
    assert "Subject: room again\n" in msg


def test_full_disk_after_submission_keeps_the_message_in_maildrop(tmpfs_spool):
    """sendmail got its file in; cleanup then finds no room in incoming: nothing is lost."""
    inst = tmpfs_spool
    user = inst.users[0]
    inst.start()
    body = "Subject: squeezed\n\n" + "q" * 200000 + "\n"
    filler = fill(os.path.join(inst.spool, "pid"))
    os.truncate(filler, os.path.getsize(filler) - 300 * 1024)  # room for maildrop's copy only
    inst.sendmail(user, input=body)
    assert wait_for(lambda: "No space left on device" in inst.log(), 10), inst.log()  # cleanup's write
    time.sleep(1)
    assert inst.messages(user) == []
    assert len(inst.queue("maildrop")) == 1, inst.log()
    assert [n for n in os.listdir(os.path.join(inst.spool, "incoming")) if n.startswith("tmp.")] == []
    os.unlink(filler)
    inst.sendmail(user, input="Subject: wake up\n\nx\n")  # pokes pickup again
    msgs = wait_delivered(inst, user, 2, timeout=30)
    assert any("Subject: squeezed\n" in m for m in msgs)


