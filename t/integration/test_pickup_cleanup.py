"""pickup and cleanup with real processes under master: sendmail drops a message
in maildrop, pickup hands it to cleanup, cleanup writes it to incoming with the
headers it adds.  A message cleanup refuses for good goes back to its sender as a
non-delivery notice, once, and leaves maildrop; a cleanup killed with SIGKILL is restarted by master and nothing is lost or doubled."""
import os
import pwd
import signal
import time

import pytest

from conftest import Runner, wait_for
from instance import MailInstance

MASTER_CF = "pickup unix n - n 1 1 pickup\ncleanup unix n - n - 0 cleanup\n"


class Instance(MailInstance):
    def __init__(self):
        super().__init__("postern-pickup-", ["pickup", "cleanup"], MASTER_CF, "message_size_limit = 20000\n")


@pytest.fixture
def inst():
    i = Instance()
    yield i
    i.stop()


def test_sendmail_message_moves_to_incoming_with_added_headers(inst):
    inst.start()
    inst.sendmail("-F", "Alice Liddell", "bob@example.net", "carol", input="Subject: hello\n\nbody text\n")
    assert wait_for(lambda: inst.queue("incoming") and not inst.queue("maildrop")), inst.log()
    [qid] = inst.queue("incoming")
    out = inst.postcat(qid)
    env, content = out.split("*** MESSAGE CONTENTS", 1)
    assert "recipient: bob@example.net\n" in env
    assert "recipient: carol@mail.example.com\n" in env  # qualified with @$myorigin
    assert env.count("recipient:") == 2
    uid = os.getuid()
    assert "Received: by mail.example.com (Postern, from userid %d)\n\tid %s; " % (uid, qid) in content
    assert "\nSubject: hello\n" in content
    assert "\nDate: " in content
    assert "\nMessage-Id: <" in content and ".%s@mail.example.com>" % qid in content
    login = pwd.getpwuid(uid).pw_name
    assert "\nFrom: Alice Liddell <%s@mail.example.com>\n" % login in content
    assert "\n\nbody text\n" in content
    log = inst.log()
    assert "%s: uid=%d from=<%s@mail.example.com>" % (qid, uid, login) in log
    assert "%s: message-id=<" % qid in log
    mode = os.stat(os.path.join(inst.spool, "incoming", qid)).st_mode & 0o777
    assert mode == 0o700  # complete


def test_several_messages_and_existing_headers_kept(inst):
    inst.start()
    for i in range(5):
        inst.sendmail("-t", input="To: r%d@example.net\nMessage-ID: <m%d@example.org>\nSubject: n%d\n\nbody %d\n"
                      % (i, i, i, i))
    assert wait_for(lambda: len(inst.queue("incoming")) == 5 and not inst.queue("maildrop")), inst.log()
    seen = set()
    for qid in inst.queue("incoming"):
        out = inst.postcat(qid)
        assert out.count("Message-I") == 1  # kept, not added
        i = int(out.split("Subject: n")[1][0])
        assert "Message-ID: <m%d@example.org>" % i in out and "r%d@example.net" % i in out
        seen.add(i)
    assert seen == set(range(5))


def test_message_over_size_limit_is_returned_to_sender_once(inst):
    inst.start()
    # sendmail refuses it under this configuration: write it with a larger limit.
    bigconf = os.path.join(inst.base, "etc-big")
    os.mkdir(bigconf)
    with open(os.path.join(bigconf, "main.cf"), "w") as f:
        f.write(inst.main_cf.replace("message_size_limit = 20000", "message_size_limit = 0"))
    r = Runner(bigconf)("sendmail", "-f", "alice@example.org", "bob@example.net",
                        input="Subject: big\n\n" + ("x" * 99 + "\n") * 300)
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: inst.queue("incoming") and not inst.queue("maildrop")), inst.log()
    assert inst.queue("corrupt") == []
    [notice] = inst.queue("incoming")
    text = inst.postcat(notice)
    assert "alice@example.org" in text and "Undelivered Mail Returned to Sender" in text
    assert "Status: 5.3.4" in text and "message file too big" in text
    assert "Subject: big" in text
    time.sleep(2.5)  # more wakeups: no loop, no second refusal
    log = inst.log()
    assert log.count("rejected: 5.3.4 message file too big") == 1, log
    assert log.count("sender non-delivery notification: %s" % notice) == 1, log
    assert len(inst.queue("incoming")) == 1
    # The system still works.
    inst.sendmail("bob@example.net", input="Subject: small\n\nok\n")
    assert wait_for(lambda: len(inst.queue("incoming")) == 2), inst.log()


def test_refused_message_stays_in_maildrop_while_its_notice_cannot_be_queued(inst):
    """The notice of a refused message is refused as well (a tiny message_size_limit
    for everything): the maildrop file is kept, not lost, and tried again."""
    with open(os.path.join(inst.confdir, "main.cf"), "w") as f:
        f.write(inst.main_cf.replace("message_size_limit = 20000", "message_size_limit = 200"))
    inst.start()
    bigconf = os.path.join(inst.base, "etc-big")
    os.mkdir(bigconf)
    with open(os.path.join(bigconf, "main.cf"), "w") as f:
        f.write(inst.main_cf.replace("message_size_limit = 20000", "message_size_limit = 0"))
    r = Runner(bigconf)("sendmail", "-f", "alice@example.org", "bob@example.net",
                        input="Subject: big\n\n" + ("x" * 99 + "\n") * 30)
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: "non-delivery notice not sent" in inst.log()), inst.log()
    assert len(inst.queue("maildrop")) == 1
    assert inst.queue("incoming") == [] and inst.queue("corrupt") == []


def test_cleanup_killed_is_restarted_and_nothing_is_lost(inst):
    inst.start()
    inst.sendmail("a@example.net", input="Subject: one\n\n1\n")
    assert wait_for(lambda: len(inst.queue("incoming")) == 1), inst.log()
    pids = inst.pids("cleanup")
    assert pids
    for p in pids:
        os.kill(p, signal.SIGKILL)
    assert wait_for(lambda: not set(inst.pids("cleanup")) & set(pids))
    inst.sendmail("b@example.net", input="Subject: two\n\n2\n")
    inst.sendmail("c@example.net", input="Subject: three\n\n3\n")
    assert wait_for(lambda: len(inst.queue("incoming")) == 3 and not inst.queue("maildrop")), inst.log()
    time.sleep(1.5)
    assert len(inst.queue("incoming")) == 3
    subjects = sorted(inst.postcat(q).split("Subject: ")[1].split("\n")[0] for q in inst.queue("incoming"))
    assert subjects == ["one", "three", "two"]
    assert set(inst.pids("cleanup")).isdisjoint(pids)
