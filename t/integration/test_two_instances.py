"""Two Postern systems deliver to each other over SMTP, as two sites on the
internet would: site A (sendmail -> pickup -> cleanup -> qmgr -> smtp) finds
b.example's MX in a DNS server on loopback and hands the message to site B's
smtpd (-> cleanup -> qmgr -> local -> a Maildir).  A recipient B does not know is
refused at RCPT, and A returns the message to its sender with B's words."""
import os
import socket

import pytest

from conftest import wait_for
from instance import ROOT, MailInstance
from test_qmgr_local import Instance
from test_smtp_client import Dns

pytestmark = pytest.mark.skipif(not ROOT, reason="needs root for the test users")


def free_port(host):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@pytest.fixture
def sites():
    port = free_port("127.0.0.2")
    # Site A: mbox delivery for its own users (the bounce comes back there).
    a = Instance("mbox", daemons=("pickup", "cleanup", "qmgr", "local", "smtp", "bounce"),
                 master_cf=("pickup unix n - n 1 1 pickup\ncleanup unix n - n - 0 cleanup\n"
                            "qmgr unix n - n 1 1 qmgr\nlocal unix - n n - - local\n"
                            "smtp unix - - n - - smtp\nbounce unix - - n - 0 bounce\n"))
    dns = Dns(a.base, {"b.example": {"MX": [[10, "mx.b.example"]]}, "mx.b.example": {"A": ["127.0.0.2"]}})
    with open(os.path.join(a.confdir, "main.cf"), "a") as f:
        f.write("inet_interfaces = 127.0.0.1\ndns_resolver_conf = %s\nsmtp_tcp_port = %d\n"
                % (dns.resolv_conf, port))
    # Site B: the same system users (A made them), Maildir in their homes.
    b = MailInstance("postern-siteb-", ["smtpd", "cleanup", "qmgr", "local"],
                     "127.0.0.2:%d inet n - n - - smtpd\ncleanup unix n - n - 0 cleanup\n"
                     "qmgr unix n - n 1 1 qmgr\nlocal unix - n n - - local\n" % port,
                     "myhostname = mx.b.example\nmydestination = b.example, $myhostname\n"
                     "inet_interfaces = 127.0.0.2\nalias_maps =\nhome_mailbox = Maildir/\n")
    a.start()
    b.start()
    yield a, b
    b.stop()
    a.stop()
    dns.stop()


def test_mail_crosses_from_one_postern_to_another(sites):
    a, b = sites
    sender, rcpt = a.users[0], a.users[1]
    a.sendmail("-f", "%s@mail.example.com" % sender, "%s@b.example" % rcpt,
               input="Subject: across\n\nfrom site A\n")
    maildir_new = os.path.join(a.homes, rcpt, "Maildir", "new")
    assert wait_for(lambda: os.path.isdir(maildir_new) and os.listdir(maildir_new), 30), a.log() + b.log()
    [name] = os.listdir(maildir_new)
    with open(os.path.join(maildir_new, name)) as f:
        text = f.read()
    assert "Subject: across" in text and "from site A" in text
    # B's smtpd says who handed it over; A's cleanup said where it came from.
    assert "by mx.b.example (Postern) with ESMTP" in text
    assert "Return-Path: <%s@mail.example.com>" % sender in text
    assert wait_for(lambda: "relay=mx.b.example[127.0.0.2]" in a.log() and "status=sent" in a.log(), 10), a.log()
    assert wait_for(lambda: a.queued() == 0, 10)


def test_unknown_recipient_is_refused_by_b_and_returned_by_a(sites):
    a, b = sites
    sender = a.users[0]
    a.sendmail("-f", "%s@mail.example.com" % sender, "nobody-here@b.example",
               input="Subject: to nobody\n\nx\n")
    assert wait_for(lambda: any("Undelivered Mail Returned to Sender" in m for m in a.messages(sender)), 30), \
        a.log() + b.log()
    notice = [m for m in a.messages(sender) if "Undelivered Mail Returned to Sender" in m][0]
    # B's own reply reaches the sender, quoted as Postfix quotes it.
    assert "host mx.b.example[127.0.0.2] said: 550 5.1.1" in notice, notice
    assert "in reply to RCPT TO command" in notice
    assert "Status: 5.1.1" in notice
    assert "NOQUEUE: reject: RCPT" in b.log()
    assert wait_for(lambda: a.queued() == 0, 10)
