"""smtpd with real processes under master and real clients (smtplib, raw sockets,
swaks): the ESMTP dialogue and its replies, pipelining, DATA and BDAT into the
queue, DSN parameters kept in the queue file, the SMTP smuggling battery, limits,
peers that vanish, and kill -9 of smtpd losing no acknowledged message."""
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import time

import pytest

from conftest import program, wait_for
from instance import MailInstance


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpInstance(MailInstance):
    def __init__(self, main_cf_extra="", daemons=("smtpd",), services=""):
        self.port = free_port()
        master_cf = "127.0.0.1:%d inet n - n - - smtpd\n" % self.port + services
        super().__init__("postern-smtpd-", list(daemons), master_cf,
                         "message_size_limit = 100000\nalias_maps =\n" + main_cf_extra)

    def start(self):
        super().start()
        assert wait_for(self.listening), self.log()

    def listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def connect(self):
        return Client(self.port)

    def smtp(self):
        s = smtplib.SMTP("127.0.0.1", self.port, timeout=10)
        return s

    def queued(self):
        return self.queue("incoming")


class Client:
    """A raw SMTP client: send bytes, read whole replies."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def reply(self):
        """One whole (possibly multi-line) reply as text; "" when the server closed."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return "\n".join(lines)
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode("utf-8", "replace"))
            if len(line) < 4 or line[3:4] != b"-":
                return "\n".join(lines)

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.reply()

    def closed(self):
        try:
            self.sock.settimeout(5)
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def inst():
    i = SmtpInstance()
    i.start()
    yield i
    i.stop()


@pytest.fixture
def client(inst):
    c = inst.connect()
    assert c.reply() == "220 mail.example.com ESMTP Postern"
    yield c
    c.close()


def clear_incoming(inst):
    for q in inst.queued():
        os.unlink(os.path.join(inst.spool, "incoming", q))


def transaction(c, sender="<a@example.com>", rcpts=("<b@example.net>",)):
    assert c.cmd("EHLO client.example").startswith("250")
    assert c.cmd("MAIL FROM:" + sender).startswith("250 2.1.0")
    for r in rcpts:
        assert c.cmd("RCPT TO:" + r).startswith("250 2.1.5")


def queue_id_of(reply):
    assert reply.startswith("250 2.0.0 Ok: queued as "), reply
    return reply.rsplit(" ", 1)[1]


# ---- the dialogue ----

def test_ehlo_lists_the_extensions(client):
    r = client.cmd("EHLO client.example").split("\n")
    assert r[0] == "250-mail.example.com"
    assert [l[4:] for l in r[1:]] == ["PIPELINING", "SIZE 100000", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN",
                                      "SMTPUTF8", "CHUNKING"]
    assert r[-1].startswith("250 ")


def test_helo_and_basic_replies(client):
    assert client.cmd("HELO client.example") == "250 mail.example.com"
    assert client.cmd("NOOP") == "250 2.0.0 Ok"
    assert client.cmd("RSET") == "250 2.0.0 Ok"
    assert client.cmd("VRFY root") == "502 5.5.1 VRFY command is disabled"
    assert client.cmd("HELP") == "502 5.5.2 Error: command not recognized"
    assert client.cmd("FOO bar") == "502 5.5.2 Error: command not recognized"
    assert client.cmd("") == "500 5.5.2 Error: bad syntax"
    assert client.cmd("EHLO") == "501 5.5.4 Syntax: EHLO hostname"
    assert client.cmd("STARTTLS") == "502 5.5.1 Error: command not implemented"
    assert client.cmd("AUTH PLAIN") == "503 5.5.1 Error: authentication not enabled"
    assert client.cmd("QUIT") == "221 2.0.0 Bye"
    assert client.closed()


def test_bad_sequences_and_syntax(inst, client):
    before = inst.queued()
    assert client.cmd("RCPT TO:<b@example.net>") == "503 5.5.1 Error: need MAIL command"
    assert client.cmd("DATA") == "503 5.5.1 Error: need MAIL command"
    assert client.cmd("EHLO c") .startswith("250")
    assert client.cmd("MAIL <a@example.com>") == "501 5.5.4 Syntax: MAIL FROM:<address>"
    assert client.cmd("MAIL FROM:<a@@example.com>").startswith("501 5.1.7 Bad sender address syntax")
    assert client.cmd("MAIL FROM:<a@example.com> FOO=1") == "555 5.5.4 Unsupported option: FOO=1"
    assert client.cmd("MAIL FROM:<a@example.com> SIZE=x") == "501 5.5.4 Bad message size syntax"
    assert client.cmd("MAIL FROM:<a@example.com> SIZE=100001") == "552 5.3.4 Message size exceeds fixed limit"
    assert client.cmd("MAIL FROM:<a@example.com> BODY=9BIT").startswith("501 5.5.4")
    assert client.cmd("MAIL FROM:<a@example.com> RET=ALL") == "501 5.5.4 Bad RET parameter syntax"
    assert client.cmd("MAIL FROM:<a@example.com>") == "250 2.1.0 Ok"
    assert client.cmd("MAIL FROM:<a@example.com>") == "503 5.5.1 Error: nested MAIL command"
    assert client.cmd("DATA") == "503 5.5.1 Error: need RCPT command"
    assert client.cmd("RCPT <b@example.net>") == "501 5.5.4 Syntax: RCPT TO:<address>"
    assert client.cmd("RCPT TO:<b@example..net>").startswith("501 5.1.3 Bad recipient address syntax")
    assert client.cmd("RCPT TO:<b@example.net> NOTIFY=NEVER,SUCCESS") == \
        "501 5.5.4 Error: Bad NOTIFY parameter syntax"
    assert client.cmd("RCPT TO:<b@example.net> ORCPT=junk") == "501 5.5.4 Error: Bad ORCPT parameter syntax"
    assert client.cmd("RCPT TO:<δ@example.net>") == "553 5.6.7 Must declare SMTPUTF8 to send unicode address"
    assert client.cmd("DATA x") == "501 5.5.4 Syntax: DATA"
    assert inst.queued() == before


def test_smtplib_message_is_queued_with_received_header(inst):
    clear_incoming(inst)
    with inst.smtp() as s:
        code, _ = s.ehlo("client.example")
        assert code == 250
        assert s.has_extn("pipelining") and s.has_extn("chunking") and s.has_extn("smtputf8")
        refused = s.sendmail("alice@example.com", ["bob@example.net"], b"Subject: hi\r\n\r\nbody\r\n.leading dot\r\n")
        assert refused == {}
    [qid] = inst.queued()
    out = inst.postcat(qid)
    env, content = out.split("*** MESSAGE CONTENTS", 1)
    assert "sender: alice@example.com" in env and "recipient: bob@example.net" in env
    assert "named_attribute: client_address=127.0.0.1" in env and "named_attribute: helo_name=client.example" in env
    assert "named_attribute: protocol_name=ESMTP" in env
    assert ("Received: from client.example (unknown [127.0.0.1])\n\tby mail.example.com (Postern) with ESMTP id %s\n"
            "\tfor <bob@example.net>; " % qid) in content
    assert "\nSubject: hi\n" in content and "Message-Id: <" in content
    assert content.rstrip().endswith("body\n.leading dot") or "\n.leading dot\n" in content


def test_pipelined_transactions_get_replies_in_order(inst, client):
    clear_incoming(inst)
    assert client.cmd("EHLO c").startswith("250")  # EHLO ends a group (RFC 2920)
    client.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net>\r\nDATA\r\n")
    assert [client.reply() for _ in range(4)] == ["250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.1.5 Ok",
                                                  "354 End data with <CR><LF>.<CR><LF>"]
    client.send("Subject: one\r\n\r\nfirst\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<d@example.net>\r\nDATA\r\n")
    q1 = queue_id_of(client.reply())
    assert [client.reply() for _ in range(3)] == ["250 2.1.0 Ok", "250 2.1.5 Ok",
                                                  "354 End data with <CR><LF>.<CR><LF>"]
    client.send("second\r\n.\r\nQUIT\r\n")
    q2 = queue_id_of(client.reply())
    assert client.reply() == "221 2.0.0 Bye"
    assert sorted(inst.queued()) == sorted([q1, q2])
    assert "sender: \n" in inst.postcat(q2) or "sender: <>" in inst.postcat(q2) or "sender:" in inst.postcat(q2)


def test_dsn_and_body_parameters_are_kept(inst, client):
    clear_incoming(inst)
    transaction(client, "<a@example.com> RET=HDRS ENVID=QQ+2B1 BODY=8BITMIME",
                ["<b@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+40example.net"])
    assert client.cmd("DATA").startswith("354")
    qid = queue_id_of(client.cmd("Subject: x\r\n\r\n\xe9t\xe9\r\n."))
    env = inst.postcat(qid).split("*** MESSAGE CONTENTS")[0]
    assert "QQ+1" in env
    assert "named_attribute: body_type=8BITMIME" in env
    assert "original_recipient: rfc822;b@example.net\nnotify: SUCCESS,FAILURE\n" in env


def test_smtputf8_addresses(inst, client):
    clear_incoming(inst)
    transaction(client, "<δοκιμή@παράδειγμα.δοκιμή> SMTPUTF8", ["<χρήστης@example.net>"])
    assert client.cmd("DATA").startswith("354")
    qid = queue_id_of(client.cmd("Subject: ünïcode\r\n\r\nbody\r\n."))
    env = inst.postcat(qid).split("*** MESSAGE CONTENTS")[0]
    assert "δοκιμή@παράδειγμα.δοκιμή" in env and "χρήστης@example.net" in env and "named_attribute: smtputf8=yes" in env


# ---- BDAT ----

def test_bdat_chunks_and_last(inst, client):
    clear_incoming(inst)
    transaction(client)
    body = b"Subject: chunky\r\n\r\nline one\r\n.dot stays\r\nend\r"
    client.send(b"BDAT %d\r\n" % len(body[:20]) + body[:20])
    assert client.reply() == "250 2.0.0 Ok: 20 bytes"
    client.send(b"BDAT %d\r\n" % len(body[20:]) + body[20:])
    assert client.reply() == "250 2.0.0 Ok: %d bytes" % len(body[20:])
    client.send(b"BDAT 1 LAST\r\n\n")
    qid = queue_id_of(client.reply())
    content = inst.postcat(qid).split("*** MESSAGE CONTENTS", 1)[1]
    assert "\nline one\n.dot stays\nend\n" in content
    assert client.cmd("DATA") == "503 5.5.1 Error: need MAIL command"


def test_bdat_zero_last_and_errors(inst, client):
    clear_incoming(inst)
    client.send(b"BDAT 5\r\nhello")
    assert client.reply() == "503 5.5.1 Error: need MAIL command"
    transaction(client)
    client.send(b"BDAT 12\r\nSubject: z\r\n")
    assert client.reply() == "250 2.0.0 Ok: 12 bytes"
    assert client.cmd("DATA") == "503 5.5.1 Error: DATA after BDAT"
    assert client.cmd("BDAT 0 LAST").startswith("250 2.0.0 Ok: queued as ")
    transaction(client, "<a@example.com> BODY=BINARYMIME")
    assert client.cmd("DATA") == "503 5.5.1 Error: BODY=BINARYMIME requires BDAT"
    assert client.cmd("RSET") == "250 2.0.0 Ok"
    assert client.cmd("BDAT x") == "501 5.5.4 Syntax: BDAT count [LAST]"
    assert client.cmd("BDAT 1 NOW") == "501 5.5.4 Syntax: BDAT count [LAST]"
    assert len(inst.queued()) == 1


def test_bdat_over_size_limit_is_refused(inst, client):
    clear_incoming(inst)
    transaction(client)
    big = b"x" * 60000 + b"\r\n"
    client.send(b"BDAT %d\r\n" % len(big) + big)
    assert client.reply().startswith("250")
    client.send(b"BDAT %d LAST\r\n" % len(big) + big)
    assert client.reply().startswith("552 5.3.4")
    assert client.cmd("NOOP") == "250 2.0.0 Ok"
    assert inst.queued() == []


# ---- DATA: end of data, smuggling, bare newlines ----

SMUGGLE = ["\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r\n", "\r\n.\r"]


@pytest.mark.parametrize("fake_end", SMUGGLE, ids=repr)
def test_smuggled_end_of_data_is_content(inst, client, fake_end):
    clear_incoming(inst)
    transaction(client)
    assert client.cmd("DATA").startswith("354")
    client.send("Subject: s\r\n\r\nbefore" + fake_end + "MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.net>\r\n"
                "DATA\r\nsmuggled\r\n.\r\n")
    qid = queue_id_of(client.reply())
    assert client.cmd("NOOP") == "250 2.0.0 Ok"  # no replies to smuggled commands are pending
    assert inst.queued() == [qid]
    out = inst.postcat(qid)
    env, content = out.split("*** MESSAGE CONTENTS", 1)
    assert "evil@example.org" not in env and "victim" not in env
    assert "MAIL FROM:<evil@example.org>" in content and "smuggled" in content


def test_dot_unstuffing_and_long_lines(inst, client):
    clear_incoming(inst)
    transaction(client)
    assert client.cmd("DATA").startswith("354")
    long_line = "y" * 20000
    client.send("Subject: d\r\n\r\n..two dots\r\n.\tone\r\n" + long_line + "\r\n.\r\n")
    qid = queue_id_of(client.reply())
    content = inst.postcat(qid).split("*** MESSAGE CONTENTS", 1)[1]
    assert "\n.two dots\n\tone\n" in content and long_line in content


@pytest.fixture
def reject_inst():
    i = SmtpInstance("smtpd_forbid_bare_newline = reject\nsmtpd_forbid_bare_newline_exclusions = 192.0.2.0/24\n")
    i.start()
    yield i
    i.stop()


def test_bare_newline_reject(reject_inst):
    c = reject_inst.connect()
    c.reply()
    transaction(c)
    assert c.cmd("DATA").startswith("354")
    c.send("Subject: x\r\n\r\nline\nMAIL FROM:<x@example.org>\r\n.\r\n")
    assert c.reply() == "550 5.5.2 Error: bare <LF> received"
    assert c.closed()
    assert reject_inst.queued() == []


def test_bare_newline_accepted_from_excluded_networks():
    i = SmtpInstance("smtpd_forbid_bare_newline = reject\nmynetworks = 127.0.0.0/8\n")  # exclusions: $mynetworks
    i.start()
    try:
        c = i.connect()
        c.reply()
        transaction(c)
        assert c.cmd("DATA").startswith("354")
        qid = queue_id_of(c.cmd("Subject: x\r\n\r\nline\nnext\r\n."))
        assert "\nline\nnext\n" in i.postcat(qid)
        c.close()
    finally:
        i.stop()


# ---- limits and bad input ----

def test_message_size_limit(inst, client):
    clear_incoming(inst)
    transaction(client)
    assert client.cmd("DATA").startswith("354")
    client.send("Subject: big\r\n\r\n" + ("z" * 998 + "\r\n") * 120 + ".\r\n")
    assert client.reply().startswith("552 5.3.4 message file too big")
    assert client.cmd("RSET") == "250 2.0.0 Ok"
    assert inst.queued() == []


def test_nul_bytes_and_junk(inst, client):
    clear_incoming(inst)
    assert client.cmd("EH\0LO x") == "500 5.5.2 Error: bad syntax"
    client.send(bytes(range(256)).replace(b"\n", b"") + b"\r\n")
    assert client.reply().startswith("50")
    transaction(client)
    assert client.cmd("DATA").startswith("354")
    assert client.cmd("Subject: n\r\n\r\nnul\0here\r\n.").startswith("550 5.6.0")
    assert client.cmd("NOOP") == "250 2.0.0 Ok"
    assert inst.queued() == []


def test_command_line_too_long(client):
    client.send("NOOP " + "a" * 5000 + "\r\n")
    assert client.reply() == "500 5.5.0 Error: line too long"
    assert client.cmd("NOOP") == "250 2.0.0 Ok"


@pytest.fixture
def strict_inst():
    i = SmtpInstance("smtpd_recipient_limit = 2\nsmtpd_hard_error_limit = 4\nsmtpd_soft_error_limit = 2\n"
                     "smtpd_error_sleep_time = 1s\nsmtpd_timeout = 2s\nsmtpd_client_connection_count_limit = 3\n"
                     "header_size_limit = 1024\n")
    i.start()
    yield i
    i.stop()


def test_header_size_limit(strict_inst):
    c = strict_inst.connect()
    c.reply()
    transaction(c)
    assert c.cmd("DATA").startswith("354")
    r = c.cmd("Subject: " + "h" * 600 + "\r\n " + "h" * 600 + "\r\n\r\nbody\r\n.")
    assert r.startswith("550 5.6.0 message header field too long"), r
    assert strict_inst.queued() == []
    c.close()


def test_recipient_limit_error_limits_and_sleep(strict_inst):
    c = strict_inst.connect()
    c.reply()
    transaction(c, rcpts=["<a@example.net>", "<b@example.net>"])
    assert c.cmd("RCPT TO:<c@example.net>") == "452 4.5.3 Error: too many recipients"  # error 1
    assert c.cmd("FOO") .startswith("502")  # error 2
    start = time.time()
    assert c.cmd("FOO").startswith("502")  # error 3: over the soft limit, delayed
    assert time.time() - start >= 0.9
    c.send("FOO\r\n")  # error 4: the hard limit
    assert c.reply().startswith("502")
    assert c.reply() == "421 4.7.0 mail.example.com Error: too many errors"
    assert c.closed()


def test_timeout_and_connection_count_limit(strict_inst):
    clients = [strict_inst.connect() for _ in range(3)]
    for c in clients:
        assert c.reply().startswith("220")
    extra = strict_inst.connect()
    assert extra.reply() == "421 4.7.0 mail.example.com Error: too many connections from 127.0.0.1"
    assert extra.closed()
    assert clients[0].reply() == "421 4.4.2 mail.example.com Error: timeout exceeded"
    assert clients[0].closed()


def test_vanished_peers_leave_nothing_and_server_goes_on(inst):
    clear_incoming(inst)
    for stage in ("greeting", "mail", "data", "bdat"):
        c = inst.connect()
        c.reply()
        if stage != "greeting":
            transaction(c)
        if stage == "data":
            c.cmd("DATA")
            c.send("Subject: cut\r\n\r\npartial")
        if stage == "bdat":
            c.send("BDAT 1000\r\nSubject: cut\r\n")
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()  # a reset
    time.sleep(0.3)
    c = inst.connect()
    assert c.reply().startswith("220")
    assert c.cmd("QUIT") == "221 2.0.0 Bye"
    assert inst.queued() == []
    assert not [n for n in os.listdir(os.path.join(inst.spool, "incoming")) if n.startswith("tmp.")]


def test_kill_9_loses_no_acknowledged_message(inst):
    clear_incoming(inst)
    acked = []
    c = inst.connect()
    c.reply()
    c.cmd("EHLO c")
    for n in range(5):
        c.cmd("MAIL FROM:<a@example.com>")
        c.cmd("RCPT TO:<b@example.net>")
        c.cmd("DATA")
        acked.append(queue_id_of(c.cmd("Subject: %d\r\n\r\nx\r\n." % n)))
    c.cmd("MAIL FROM:<a@example.com>")
    c.cmd("RCPT TO:<b@example.net>")
    c.cmd("DATA")
    c.send("Subject: unfinished\r\n\r\n")
    for pid in inst.pids("smtpd"):
        os.kill(pid, signal.SIGKILL)
    assert c.closed()
    assert sorted(inst.queued()) == sorted(acked)
    assert wait_for(inst.listening)


def test_many_sessions_in_one_process(inst):
    clients = []
    for _ in range(50):
        c = inst.connect()
        clients.append(c)
    for c in clients:
        assert c.reply().startswith("220")
    assert len(inst.pids("smtpd")) == 1
    for c in clients:
        assert c.cmd("QUIT") == "221 2.0.0 Bye"


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
def test_swaks(inst):
    clear_incoming(inst)
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % inst.port, "--from", "a@example.com", "--to",
                        "b@example.net", "--pipeline", "--header", "Subject: via swaks"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "250 2.0.0 Ok: queued as" in r.stdout
    assert len(inst.queued()) == 1


# ---- the whole path: smtpd -> incoming -> qmgr -> local -> Maildir ----

@pytest.fixture
def local_inst():
    from test_qmgr_local import Instance as LocalInstance
    i = LocalInstance("maildir")
    i.port = free_port()
    shutil.copy(program("smtpd"), os.path.join(i.daemons, "smtpd"))
    with open(os.path.join(i.confdir, "master.cf"), "a") as f:
        f.write("127.0.0.1:%d inet n - n - - smtpd\n" % i.port)
    yield i
    i.stop()


def test_message_reaches_a_maildir(local_inst):
    local_inst.start()
    user = local_inst.users[0]
    assert wait_for(lambda: SmtpInstance.listening(local_inst)), local_inst.log()
    with smtplib.SMTP("127.0.0.1", local_inst.port, timeout=10) as s:
        s.ehlo("client.example")
        s.sendmail("alice@example.org", [user + "@mail.example.com"],
                   "Subject: over smtp\r\n\r\nünicode body\r\n..dotted\r\n".encode())
    assert wait_for(lambda: local_inst.messages(user) and local_inst.queued() == 0, 15), local_inst.log()
    [msg] = local_inst.messages(user)
    assert "Return-Path: <alice@example.org>\n" in msg
    assert "Received: from client.example (unknown [127.0.0.1])\n\tby mail.example.com (Postern) with ESMTP" in msg
    assert "Subject: over smtp\n" in msg and "\n\nünicode body\n..dotted\n" in msg  # smtplib stuffed it, smtpd unstuffed it


# ---- relay control through the restriction engine ----

@pytest.fixture
def relay_inst():
    i = SmtpInstance("mynetworks = 192.0.2.0/24\nsmtpd_reject_unlisted_recipient = no\n")
    i.start()
    yield i
    i.stop()


def test_relay_is_refused_to_strangers_and_local_mail_accepted(relay_inst):
    c = relay_inst.connect()
    c.reply()
    transaction(c, rcpts=[])
    r = c.cmd("RCPT TO:<b@example.net>")
    assert r.startswith("454 4.7.1 ") and "Relay access denied" in r, r  # defer_unauth_destination
    assert c.cmd("DATA") == "503 5.5.1 Error: need RCPT command"
    assert c.cmd("RCPT TO:<postmaster@mail.example.com>") == "250 2.1.5 Ok"
    assert c.cmd("DATA").startswith("354")
    queue_id_of(c.cmd("Subject: local\r\n\r\nhi\r\n."))
    assert "NOQUEUE: reject: RCPT from" in relay_inst.log()
    assert len(relay_inst.queued()) == 1


@pytest.fixture
def no_delay_inst():
    i = SmtpInstance("smtpd_delay_reject = no\nsmtpd_client_restrictions = reject\n")
    i.start()
    yield i
    i.stop()


def test_client_refused_at_connect_without_delay_reject(no_delay_inst):
    c = no_delay_inst.connect()
    r = c.reply()
    assert r.startswith("554 5.7.1 "), r
    assert c.closed()


# ---- STARTTLS, implicit TLS and AUTH ----

import ssl  # noqa: E402


class TlsInstance(SmtpInstance):
    """smtp with STARTTLS and AUTH inside TLS; a wrapper-mode port (submissions) and
    an encrypt-only port (submission); the auth service with one user."""

    def __init__(self):
        from test_auth import postpasswd
        self.wrapper_port, self.encrypt_port = free_port(), free_port()
        services = ("127.0.0.1:%d inet n - n - - smtpd -o smtpd_tls_wrappermode=yes\n"
                    "127.0.0.1:%d inet n - n - - smtpd -o smtpd_tls_security_level=encrypt\n"
                    "auth unix - n n - - auth\n" % (self.wrapper_port, self.encrypt_port))
        super().__init__("", daemons=("smtpd", "auth"), services=services)
        cert, key = os.path.join(self.base, "cert.pem"), os.path.join(self.base, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", key, "-out", cert, "-subj", "/CN=mail.example.com", "-days", "2"],
                       check=True, capture_output=True)
        os.chmod(key, 0o644)  # the test's smtpd runs as mail_owner
        users = os.path.join(self.base, "users")
        with open(users, "w") as f:
            f.write("alice %s\n" % postpasswd("alice's secret"))
        assert self.run("postmap", "hash:" + users).returncode == 0
        self.main_cf += ("smtpd_tls_security_level = may\nsmtpd_tls_cert_file = %s\nsmtpd_tls_key_file = %s\n"
                         "smtpd_sasl_auth_enable = yes\nsmtpd_tls_auth_only = yes\nmynetworks = 192.0.2.0/24\n"
                         "smtpd_reject_unlisted_recipient = no\nauth_password_maps = hash:%s\n"
                         "auth_failure_delay = 0\n" % (cert, key, users))
        with open(os.path.join(self.confdir, "main.cf"), "w") as f:
            f.write(self.main_cf)

    def start(self):
        super().start()
        assert wait_for(lambda: os.path.exists(os.path.join(self.spool, "private", "auth"))), self.log()


@pytest.fixture(scope="module")
def tls_inst():
    i = TlsInstance()
    i.start()
    yield i
    i.stop()


def no_verify():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_starttls_then_auth_and_relay(tls_inst):
    clear_incoming(tls_inst)
    with smtplib.SMTP("127.0.0.1", tls_inst.port, timeout=10) as s:
        s.ehlo("client.example")
        assert s.has_extn("starttls") and not s.has_extn("auth")
        assert s.docmd("AUTH PLAIN AGFsaWNlAHg=") == (538, b"5.7.11 Encryption required for requested "
                                                           b"authentication mechanism")
        code, _ = s.docmd("RCPT TO:<b@example.net>")
        assert code == 503
        s.starttls(context=no_verify())
        s.ehlo("client.example")
        assert not s.has_extn("starttls") and s.esmtp_features["auth"].strip() == "PLAIN LOGIN"
        assert s.login("alice", "alice's secret") == (235, b"2.7.0 Authentication successful")
        assert s.docmd("AUTH PLAIN AGFsaWNlAHg=")[0] == 503
        assert s.sendmail("alice@example.com", ["b@example.net"], b"Subject: secure\r\n\r\nhi\r\n") == {}
    [qid] = tls_inst.queued()
    out = tls_inst.postcat(qid)
    assert "(using TLSv1.3 with cipher " in out
    assert "\t(Authenticated sender: alice)\n\tby mail.example.com (Postern) with ESMTPSA id %s\n" % qid in out
    assert "named_attribute: sasl_username=alice" in out


def test_relay_needs_auth_and_bad_logins_are_refused(tls_inst):
    with smtplib.SMTP("127.0.0.1", tls_inst.port, timeout=10) as s:
        s.starttls(context=no_verify())
        s.ehlo("client.example")
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login("alice", "wrong")
        assert e.value.smtp_code == 535 and e.value.smtp_error.startswith(b"5.7.8")
        assert s.docmd("AUTH LOGIN") == (334, b"VXNlcm5hbWU6")
        assert s.docmd("*")[0] == 501
        assert s.docmd("AUTH CRAM-MD5")[0] == 504
        s.docmd("MAIL FROM:<a@example.com>")
        code, text = s.docmd("RCPT TO:<b@example.net>")
        assert code == 454 and b"Relay access denied" in text
        assert s.docmd("STARTTLS") == (554, b"5.5.1 Error: TLS already active")


def test_commands_pipelined_with_starttls_are_discarded(tls_inst):
    c = tls_inst.connect()
    c.reply()
    c.cmd("EHLO c")
    c.send("STARTTLS\r\nFOO injected\r\n")
    assert c.reply() == "220 2.0.0 Ready to start TLS"
    c.sock = no_verify().wrap_socket(c.sock, server_hostname="mail.example.com")
    assert c.cmd("NOOP") == "250 2.0.0 Ok"  # not the 502 of the injected command
    assert c.cmd("MAIL FROM:<a@example.com>") == "250 2.1.0 Ok"  # the EHLO before TLS was forgotten, HELO is optional
    c.close()


def test_wrapper_mode_and_encrypt_level(tls_inst):
    raw = socket.create_connection(("127.0.0.1", tls_inst.wrapper_port), timeout=10)
    c = Client.__new__(Client)
    c.sock, c.buf = no_verify().wrap_socket(raw, server_hostname="mail.example.com"), b""
    assert c.reply() == "220 mail.example.com ESMTP Postern"
    assert "AUTH PLAIN LOGIN" in c.cmd("EHLO c")
    c.close()
    e = Client(tls_inst.encrypt_port)
    e.reply()
    e.cmd("EHLO c")
    assert e.cmd("MAIL FROM:<a@example.com>") == "530 5.7.0 Must issue a STARTTLS command first"
    e.close()


def test_unusable_certificate_leaves_smtpd_running_without_tls():
    # A missing key file: smtpd starts, says why, and answers STARTTLS with 454
    # instead of exiting at every start (which would only make master restart it).
    i = SmtpInstance("smtpd_tls_security_level = may\nsmtpd_tls_cert_file = /nonexistent/cert.pem\n"
                     "smtpd_tls_key_file = /nonexistent/key.pem\n")
    i.start()
    try:
        c = i.connect()
        assert c.reply().startswith("220 ")
        ehlo = c.cmd("EHLO c")
        assert "STARTTLS" not in ehlo
        assert c.cmd("STARTTLS") == "454 4.7.0 TLS not available due to local problem"
        transaction(c)  # mail still flows
        c.close()
        assert "TLS is not available" in i.log()
        assert "throttling" not in i.log()
    finally:
        i.stop()


def test_peer_vanishing_mid_handshake(tls_inst):
    for junk in (b"", b"\x16\x03\x01\x02\x00\x01", b"not tls at all\r\n" * 100):
        c = tls_inst.connect()
        c.reply()
        assert c.cmd("STARTTLS") == "220 2.0.0 Ready to start TLS"
        c.send(junk)
        c.close()
    c = tls_inst.connect()
    assert c.reply().startswith("220")
    assert c.cmd("QUIT") == "221 2.0.0 Bye"


# ---- more limits: helo, junk, rate, unauthorised pipelining, a full process ----

@pytest.fixture
def picky_inst():
    i = SmtpInstance("smtpd_helo_required = yes\nsmtpd_junk_command_limit = 2\nsmtpd_hard_error_limit = 3\n"
                     "smtpd_data_restrictions = reject_unauth_pipelining\n"
                     "smtpd_forbid_unauth_pipelining = no\n"
                     "smtpd_sessions_per_process = 2\n")
    i.start()
    yield i
    i.stop()


def test_helo_required_junk_limit_and_unauth_pipelining(picky_inst):
    c = picky_inst.connect()
    c.reply()
    assert c.cmd("MAIL FROM:<a@example.com>") == "503 5.5.1 Error: send HELO/EHLO first"  # error 1
    assert [c.cmd("NOOP") for _ in range(3)] == ["250 2.0.0 Ok"] * 3  # the third is over the junk limit: error 2
    c.send("NOOP\r\n")  # error 3: the hard limit
    assert c.reply() == "250 2.0.0 Ok"
    assert c.reply() == "421 4.7.0 mail.example.com Error: too many errors"
    assert c.closed()


def test_unauth_pipelining_is_refused_at_data(picky_inst):
    c = picky_inst.connect()
    c.reply()
    c.send("HELO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n")
    replies = [c.reply() for _ in range(4)]
    assert replies[:3] == ["250 mail.example.com", "250 2.1.0 Ok", "250 2.1.5 Ok"]
    assert replies[3].startswith("503 5.5.0 ") and "Improper use of SMTP command pipelining" in replies[3]
    c.close()
    c = picky_inst.connect()  # the same after EHLO and waiting for its reply is fine
    c.reply()
    transaction(c)
    assert c.cmd("DATA").startswith("354")
    c.close()


def test_client_that_talks_ahead_is_disconnected(inst):
    # A bulk mailer that sends its whole dialogue at once, before it saw the
    # greeting or EHLO's reply (smtpd_forbid_unauth_pipelining = yes, Postfix 3.9).
    for blast in ("EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n",
                  "HELO c\r\nMAIL FROM:<a@example.com>\r\n"):
        c = inst.connect()
        c.send(blast)  # before reading the greeting: an early talker
        assert c.reply().startswith("220 ")
        assert c.reply() == "554 5.5.0 Error: SMTP protocol synchronization"
        assert c.closed()
    assert "improper command pipelining after CONNECT" in inst.log()
    # Pipelining after EHLO's reply announced it is what PIPELINING is for.
    c = inst.connect()
    c.reply()
    transaction(c)
    assert c.cmd("DATA").startswith("354")
    c.close()


def test_full_process_spills_over_to_a_second(picky_inst):
    held = [picky_inst.connect() for _ in range(2)]
    for c in held:
        assert c.reply().startswith("220")
    third = picky_inst.connect()  # the first process is full (2 sessions): master starts a second
    assert third.reply().startswith("220")
    assert len(picky_inst.pids("smtpd")) == 2
    for c in held + [third]:
        assert c.cmd("QUIT") == "221 2.0.0 Bye"


def test_connection_rate_limit():
    i = SmtpInstance("smtpd_client_connection_rate_limit = 3\n")
    i.start()  # its probe of the port is the first connection of the minute
    try:
        clients = [i.connect() for _ in range(3)]
        assert [c.reply()[:3] for c in clients] == ["220", "220", "421"]
        assert clients[2].closed()
        assert "connection limit exceeded for 127.0.0.1" in i.log()
    finally:
        i.stop()


def test_sessions_ending_data_together_share_a_folder_fsync():
    i = SmtpInstance()
    with open(os.path.join(i.confdir, "master.cf"), "w") as f:
        f.write("127.0.0.1:%d inet n - n - - smtpd -v\n" % i.port)
    i.start()
    try:
        clients = [i.connect() for _ in range(20)]
        for c in clients:
            c.reply()
            transaction(c)
            assert c.cmd("DATA").startswith("354")
            c.send("Subject: together\r\n\r\nbody\r\n")
        for c in clients:
            c.send(".\r\n")
        ids = [queue_id_of(c.reply()) for c in clients]
        assert sorted(i.queued()) == sorted(ids)
        sizes = [int(n) for n in re.findall(r"group commit: (\d+) queue files", i.log())]
        assert sum(sizes) == 20 and max(sizes) > 1, sizes
    finally:
        i.stop()
