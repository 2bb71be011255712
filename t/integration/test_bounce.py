"""The bounce service with real processes under master: a message that fails comes
back to its sender as an RFC 3464 report; a bounce that fails goes to postmaster; a
double bounce is discarded; expired and delayed mail is reported; a bounce service
that is down or killed loses no notice."""
import email
import email.policy
import os
import re
import signal
import time

import pytest

from conftest import wait_for
from instance import ROOT
from test_qmgr_local import Instance

pytestmark = pytest.mark.skipif(not ROOT, reason="needs real users with Maildirs")

DAEMONS = ("pickup", "cleanup", "qmgr", "local", "bounce")
MASTER_CF = ("pickup unix n - n 1 1 pickup\n"
             "cleanup unix n - n - 0 cleanup\n"
             "qmgr unix n - n 1 1 qmgr\n"
             "local unix - n n - - local\n"
             "bounce unix - - n - 0 bounce\n")


def make(main_cf_extra="", postmaster=None, master_cf=MASTER_CF):
    """An instance whose postmaster is the second user (or the address given)."""
    inst = Instance("maildir", DAEMONS, master_cf, main_cf_extra)
    with open(inst.aliases, "a") as f:
        f.write("postmaster: %s\n" % (postmaster or inst.users[1]))
    r = inst.run("postalias", inst.aliases)
    assert r.returncode == 0, r.stderr
    return inst


@pytest.fixture
def inst():
    i = make()
    yield i
    i.stop()


def parse(text):
    return email.message_from_string(text, policy=email.policy.compat32)


def report_parts(msg):
    """(text part, list of delivery-status blocks, returned part) of a notice."""
    assert msg.get_content_type() == "multipart/report", msg
    assert msg.get_param("report-type") == "delivery-status"
    parts = msg.get_payload()
    assert len(parts) == 3
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "message/delivery-status"
    return parts[0].get_payload(), parts[1].get_payload(), parts[2]


def sender_address(inst, n=0):
    return "%s@mail.example.com" % inst.users[n]


def test_unknown_user_bounces_to_sender_with_report_and_original(inst):
    inst.start()
    a = inst.users[0]
    inst.sendmail("-f", sender_address(inst), "nosuchuser12345",
                  input="Subject: lost?\nX-Marker: original\n\nthe original body\n")
    assert wait_for(lambda: inst.messages(a) and inst.queued() == 0, 15), inst.log()
    time.sleep(1)
    [text] = inst.messages(a)
    msg = parse(text)
    assert msg["Return-Path"] == "<>"
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert msg["From"] == "Mail Delivery System <MAILER-DAEMON@mail.example.com>"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["Date"] and msg["Message-ID"]
    human, blocks, returned = report_parts(msg)
    assert "This is the mail system at host mail.example.com" in human
    assert "<nosuchuser12345@mail.example.com>: user unknown" in human
    per_message, per_rcpt = blocks[0], blocks[1]
    assert per_message["Reporting-MTA"] == "dns; mail.example.com"
    assert per_message["Arrival-Date"]
    assert per_rcpt["Final-Recipient"] == "rfc822; nosuchuser12345@mail.example.com"
    assert per_rcpt["Action"] == "failed"
    assert per_rcpt["Status"] == "5.1.1"
    assert returned.get_content_type() == "message/rfc822"
    original = returned.get_payload()[0]
    assert original["X-Marker"] == "original"
    assert original.get_payload() == "the original body\n"
    log = inst.log()
    [qid] = re.findall(r"(\w+): to=<nosuchuser12345@mail.example.com>, relay=local, status=bounced", log)
    assert "%s: sender non-delivery notification: " % qid in log
    assert "%s: removed" % qid in log
    assert os.listdir(os.path.join(inst.spool, "bounce")) == []


def test_ret_hdrs_and_notify_never(inst):
    inst.start()
    a = inst.users[0]
    inst.sendmail("-f", sender_address(inst), "-R", "hdrs", "nosuchuser1",
                  input="Subject: headers only\n\nsecret body\n")
    assert wait_for(lambda: inst.messages(a) and inst.queued() == 0, 15), inst.log()
    msg = parse(inst.messages(a)[0])
    _, _, returned = report_parts(msg)
    assert returned.get_content_type() == "text/rfc822-headers"
    assert "Subject: headers only" in returned.get_payload()
    assert "secret body" not in inst.messages(a)[0]
    # NOTIFY=NEVER: bounced, logged, no notice.
    inst.sendmail("-f", sender_address(inst), "-N", "never", "nosuchuser2", input="Subject: quiet\n\nx\n")
    assert wait_for(lambda: "no recipient asked for one" in inst.log() and inst.queued() == 0, 15), inst.log()
    time.sleep(1)
    assert len(inst.messages(a)) == 1


def test_null_sender_bounce_goes_to_postmaster_from_double_bounce(inst):
    inst.start()
    pm = inst.users[1]
    inst.sendmail("-f", "<>", "nosuchuser3", input="Subject: a bounce\n\nx\n")
    assert wait_for(lambda: inst.messages(pm) and inst.queued() == 0, 15), inst.log()
    msg = parse(inst.messages(pm)[0])
    assert msg["Return-Path"] == "<double-bounce@mail.example.com>"
    _, blocks, _ = report_parts(msg)
    assert blocks[1]["Status"] == "5.1.1"
    assert "postmaster non-delivery notification" in inst.log()
    assert inst.messages(inst.users[0]) == []


def test_double_bounce_is_discarded_and_nothing_loops():
    # postmaster itself unknown: the bounce of the bounce fails as well.
    inst = make(postmaster="nosuchpostmaster")
    try:
        inst.start()
        inst.sendmail("-f", "<>", "nosuchuser4", input="Subject: a bounce\n\nx\n")
        assert wait_for(lambda: "discarded" in inst.log() and inst.queued() == 0, 15), inst.log()
        time.sleep(2)
        log = inst.log()
        assert log.count("postmaster non-delivery notification") == 1, log
        assert log.count("discarded") == 1, log
        assert "notice about mail from <double-bounce@mail.example.com> discarded" in log
        assert inst.queued() == 0
        assert all(inst.messages(u) == [] for u in inst.users)
    finally:
        inst.stop()


def test_bounce_service_down_or_killed_loses_no_notice():
    """Down: the recipient is done, its bounce log kept, the message deferred.  Killed
    (-9) in the middle of a notice: the same.  Then exactly one notice arrives."""
    without_bounce = "".join(l + "\n" for l in MASTER_CF.splitlines() if not l.startswith("bounce"))
    inst = make(master_cf=without_bounce)
    try:
        inst.start()
        a = inst.users[0]
        inst.sendmail("-f", sender_address(inst), "nosuchuser5", input="Subject: later\n\nx\n")
        assert wait_for(lambda: "notice not sent" in inst.log() and inst.queue("deferred"), 15), inst.log()
        [qid] = inst.queue("deferred")
        assert os.path.exists(os.path.join(inst.spool, "bounce", qid))
        # Cleanup stopped: the next notice hangs in bounce, which is then killed.
        cleanups = inst.pids("cleanup")
        assert cleanups
        for pid in cleanups:
            os.kill(pid, signal.SIGSTOP)
        try:
            with open(os.path.join(inst.confdir, "master.cf"), "w") as f:
                f.write(MASTER_CF)
            assert inst.run("postern", "-c", inst.confdir, "reload").returncode == 0
            assert wait_for(lambda: inst.pids("bounce"), 15), inst.log()
            time.sleep(0.5)
            for pid in inst.pids("bounce"):
                os.kill(pid, signal.SIGKILL)
            assert wait_for(lambda: inst.log().count("notice not sent") >= 2, 15), inst.log()
            assert os.path.exists(os.path.join(inst.spool, "bounce", qid))
            assert inst.queued() == 1
        finally:
            for pid in cleanups:
                os.kill(pid, signal.SIGCONT)
        assert wait_for(lambda: inst.messages(a) and inst.queued() == 0, 30), inst.log()
        time.sleep(1.5)
        assert len(inst.messages(a)) == 1
        assert inst.log().count("%s: sender non-delivery notification" % qid) == 1
        assert not os.path.exists(os.path.join(inst.spool, "bounce", qid))
    finally:
        inst.stop()


def test_expired_message_is_returned_with_last_defer_reason():
    inst = make("maximal_queue_lifetime = 0\n")
    try:
        inst.start()
        a = inst.users[0]
        inst.sendmail("-f", sender_address(inst), "bob@example.net", input="Subject: far away\n\nx\n")
        assert wait_for(lambda: inst.messages(a) and inst.queued() == 0, 15), inst.log()
        msg = parse(inst.messages(a)[0])
        human, blocks, _ = report_parts(msg)
        assert blocks[1]["Action"] == "failed"
        # Routed to smtp, which this instance's master.cf does not run.
        assert blocks[1]["Status"] == "4.3.0"
        assert "connect to smtp: " in human
        assert "to=<bob@example.net>, relay=none, status=expired, returned to sender" in inst.log()
    finally:
        inst.stop()


def test_delay_warning_is_sent_once():
    inst = make("delay_warning_time = 1s\n")
    try:
        inst.start()
        a = inst.users[0]
        inst.sendmail("-f", sender_address(inst), "bob@example.net", input="Subject: slow\n\nx\n")
        assert wait_for(lambda: inst.messages(a), 15), inst.log()
        time.sleep(4)  # more retries: no second warning
        [text] = inst.messages(a)
        msg = parse(text)
        assert msg["Subject"] == "Delayed Mail (still being retried)"
        _, blocks, _ = report_parts(msg)
        assert blocks[1]["Action"] == "delayed"
        assert blocks[1]["Final-Recipient"] == "rfc822; bob@example.net"
        [qid] = inst.queue("deferred") or inst.queue("active")
        assert "%s: sender delay notification: " % qid in inst.log()
        with open(os.path.join(inst.spool, "defer", qid)) as f:
            assert "delay_warning=sent\n" in f.read()
    finally:
        inst.stop()
