"""Real mail clients submit through Postern's sendmail and the message reaches a
user's Maildir and mbox: s-nail (mailx) with its mta set to our sendmail, a
cron-like "echo body | sendmail user" without any header, and mutt driven without a
terminal.  Each message arrives once, with the headers its client wrote and those
Postern adds, and the queue ends empty."""
import os
import shutil
import subprocess
import time

import pytest

from conftest import program, wait_for
from test_qmgr_local import Instance


@pytest.fixture(params=["maildir", "mbox"])
def inst(request):
    i = Instance(request.param)
    i.start()
    yield i
    i.stop()


def client_env(inst):
    """The environment a client runs in: our configuration, no user's rc files."""
    return dict(os.environ, POSTERN_CONFIG_DIR=inst.confdir, HOME=inst.base, MAILRC="/dev/null")


def the_one_message(inst, user):
    assert wait_for(lambda: inst.messages(user) and inst.queued() == 0, 20), inst.log()
    time.sleep(1)  # no second copy arrives
    [msg] = inst.messages(user)
    return msg


@pytest.mark.skipif(not shutil.which("s-nail"), reason="s-nail is not installed (make deps)")
def test_s_nail_submits_through_our_sendmail(inst):
    user = inst.users[0]
    r = subprocess.run(["s-nail", "-n", "-S", "mta=" + program("sendmail"), "-s", "from s-nail",
                        user + "@localhost"], input="hello from s-nail\n", capture_output=True, text=True,
                       env=client_env(inst), timeout=30)
    assert r.returncode == 0, r.stderr
    msg = the_one_message(inst, user)
    assert "Subject: from s-nail\n" in msg
    assert "User-Agent: s-nail" in msg
    assert "Delivered-To: %s@localhost\n" % user in msg
    assert "Received: by mail.example.com (Postern, from userid %d)" % os.getuid() in msg
    assert msg.rstrip("\n").endswith("\n\nhello from s-nail")


def test_cron_like_body_without_headers(inst):
    user = inst.users[0]
    r = subprocess.run("echo 'backup finished: 0 errors' | %s %s" % (program("sendmail"), user), shell=True,
                       capture_output=True, text=True, env=client_env(inst), timeout=30)
    assert r.returncode == 0, r.stderr
    msg = the_one_message(inst, user)
    # Postern supplies what the job did not write.
    for header in ("Return-Path: <", "Received: by mail.example.com", "Date: ", "Message-Id: <", "From: "):
        assert header in msg, msg
    assert msg.rstrip("\n").endswith("\n\nbackup finished: 0 errors")


@pytest.mark.skipif(not shutil.which("mutt"), reason="mutt is not installed (make deps)")
def test_mutt_batch_mode_submits_through_our_sendmail(inst):
    user = inst.users[0]
    muttrc = os.path.join(inst.base, "muttrc")
    with open(muttrc, "w") as f:
        f.write('set sendmail="%s"\nset hostname=mail.example.com\nset from=tester@example.org\n'
                'set realname="Test Er"\nset use_envelope_from=yes\nset copy=no\n' % program("sendmail"))
    r = subprocess.run(["mutt", "-n", "-F", muttrc, "-s", "from mutt", user], input="hello from mutt\n",
                       capture_output=True, text=True, env=client_env(inst), timeout=30)
    assert r.returncode == 0, r.stderr + r.stdout
    msg = the_one_message(inst, user)
    assert "Subject: from mutt\n" in msg, msg
    assert "From: Test Er <tester@example.org>\n" in msg, msg
    assert "Return-Path: <tester@example.org>\n" in msg  # mutt passed it with -f
    assert "Delivered-To: %s@mail.example.com\n" % user in msg
    assert "hello from mutt\n" in msg
