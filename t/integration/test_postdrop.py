"""postdrop, the set-gid helper: an ordinary user's sendmail cannot write maildrop
(mode 1730) and hands the queue file to postdrop, which checks it and queues it
owned by that user.  A configuration the user controls, a damaged file, or a
pipe on standard input are refused and leave nothing in maildrop."""
import grp
import os
import pwd
import shutil
import subprocess

import pytest

from conftest import program, wait_for
from instance import ROOT
from test_qmgr_local import Instance

pytestmark = pytest.mark.skipif(not ROOT, reason="needs root to make users and a set-gid program")


@pytest.fixture
def inst():
    i = Instance("maildir")
    cmd = os.path.join(i.base, "cmd")
    os.mkdir(cmd)
    os.chmod(cmd, 0o755)
    for name in ("sendmail", "postdrop"):
        shutil.copy(program(name), os.path.join(cmd, name))
    postdrop = os.path.join(cmd, "postdrop")
    os.chown(postdrop, 0, grp.getgrnam(i.group).gr_gid)
    os.chmod(postdrop, 0o2755)
    i.cmd = cmd
    i.main_cf += "command_directory = %s\n" % cmd
    with open(os.path.join(i.confdir, "main.cf"), "w") as f:
        f.write(i.main_cf)
    i.start()
    yield i
    i.stop()


def as_user(user, argv, input):
    return subprocess.run(["/usr/sbin/runuser", "-u", user, "--"] + argv, input=input, capture_output=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "TMPDIR": "/tmp"})


def test_ordinary_user_submits_through_postdrop(inst):
    sender, rcpt = inst.users[0], inst.users[1]
    r = as_user(sender, ["ls", os.path.join(inst.spool, "maildrop")], None)
    assert r.returncode != 0  # the user cannot even list maildrop
    r = as_user(sender, [os.path.join(inst.cmd, "sendmail"), "-c", inst.confdir, rcpt],
                b"Subject: through postdrop\n\nhello\n")
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: len(inst.messages(rcpt)) == 1, 20), inst.log()
    text = inst.messages(rcpt)[0]
    assert "Subject: through postdrop" in text
    assert "from userid %d" % pwd.getpwnam(sender).pw_uid in text
    assert "Return-Path: <%s@" % sender in text
    assert not [n for n in os.listdir("/tmp") if n.startswith("tmp.") and
                os.stat(os.path.join("/tmp", n)).st_uid == pwd.getpwnam(sender).pw_uid]


def test_configuration_the_user_controls_is_refused(inst):
    sender = inst.users[0]
    own = os.path.join(inst.base, "userconf")
    shutil.copytree(inst.confdir, own)
    uid = pwd.getpwnam(sender).pw_uid
    for path in (own, os.path.join(own, "main.cf")):
        os.chown(path, uid, -1)
    r = as_user(sender, [os.path.join(inst.cmd, "sendmail"), "-c", own, inst.users[1]], b"Subject: x\n\nx\n")
    assert r.returncode == 75, r.stderr
    assert b"giving up the set-gid privilege" in r.stderr
    assert b"cannot write to maildrop" in r.stderr
    assert inst.queue("maildrop") == []


def test_damaged_input_and_pipes_are_refused(inst):
    sender = inst.users[0]
    junk = os.path.join(inst.base, "junk")
    with open(junk, "wb") as f:
        f.write(b"V\x00\x00\x00\x04\x00\x00\x00\x01garbage")
    os.chmod(junk, 0o644)
    postdrop = [os.path.join(inst.cmd, "postdrop"), "-c", inst.confdir]
    with open(junk, "rb") as f:
        r = subprocess.run(["/usr/sbin/runuser", "-u", sender, "--"] + postdrop, stdin=f, capture_output=True, timeout=30)
    assert r.returncode == 65, r.stderr
    r = as_user(sender, postdrop, b"not a queue file")  # a pipe
    assert r.returncode == 65
    assert b"not a pipe" in r.stderr
    assert inst.queue("maildrop") == []


def test_postern_check_creates_missing_accounts(tmp_path):
    tag = "%05d" % (os.getpid() % 100000)
    owner, group = "pstown" + tag, "pstgrp" + tag
    conf = tmp_path / "etc"
    conf.mkdir()
    (conf / "main.cf").write_text("queue_directory = %s\nmail_owner = %s\nsetgid_group = %s\n"
                                  % (tmp_path / "spool", owner, group))
    (conf / "master.cf").write_text("")
    try:
        r = subprocess.run([program("postern"), "-c", str(conf), "start"], capture_output=True, text=True)
        assert r.returncode != 0 and "postern check creates it" in r.stderr
        r = subprocess.run([program("postern"), "-c", str(conf), "check"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        pw = pwd.getpwnam(owner)
        assert pw.pw_uid != 0 and pw.pw_shell == "/usr/sbin/nologin"
        assert grp.getgrnam(group).gr_gid != pw.pw_gid
        assert os.stat(tmp_path / "spool" / "maildrop").st_gid == grp.getgrnam(group).gr_gid
    finally:
        subprocess.run(["userdel", owner], capture_output=True)
        subprocess.run(["groupdel", group], capture_output=True)
