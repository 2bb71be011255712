"""qmgr and local with real processes under master: sendmail -> pickup -> cleanup ->
qmgr -> local -> the user's Maildir or mbox.  Aliases expand, an unknown user keeps
the message in hold, a remote domain is deferred with its reason in mailq, and a
local killed in the middle of a batch neither loses nor repeats a message."""
import glob
import os
import pwd
import re
import signal
import subprocess
import time

import pytest

from conftest import wait_for
from instance import ROOT, MailInstance

MASTER_CF = ("pickup unix n - n 1 1 pickup\n"
             "cleanup unix n - n - 0 cleanup\n"
             "qmgr unix n - n 1 1 qmgr\n"
             "local unix - n n - - local\n")



class Instance(MailInstance):
    """The whole local mail path, with its own test users (as root) and aliases."""

    def __init__(self, mailbox, daemons=("pickup", "cleanup", "qmgr", "local"), master_cf=MASTER_CF,
                 main_cf_extra=""):
        self.mailbox = mailbox
        super().__init__("postern-qmgr-", list(daemons), master_cf)
        self.mailspool = os.path.join(self.base, "mail")
        self.homes = os.path.join(self.base, "home")
        for d in (self.mailspool, self.homes):
            os.mkdir(d)
            os.chmod(d, 0o755)
        os.chmod(self.mailspool, 0o1777)
        self.users = []
        if ROOT:
            tag = "%05d" % (os.getpid() % 100000)
            for n in ("a", "b", "c"):
                name = "pq%s%s" % (n, tag)
                subprocess.run(["userdel", "-r", name], capture_output=True)
                r = subprocess.run(["useradd", "-m", "-d", os.path.join(self.homes, name), name],
                                   capture_output=True, text=True)
                assert r.returncode == 0, r.stderr
                self.users.append(name)
        else:
            self.users = [self.owner]
        self.aliases = os.path.join(self.confdir, "aliases")
        with open(self.aliases, "w") as f:
            f.write("team: %s\n" % ", ".join(self.users[:2] if ROOT else self.users))
            f.write("lead: team\n")
            f.write("pipe: |/bin/cat\n")
        home_mailbox = "Maildir/" if mailbox == "maildir" else ""
        self.main_cf += ("mydestination = $myhostname, localhost\nalias_maps = hash:%s\nhome_mailbox = %s\n"
                         "mail_spool_directory = %s\nrecipient_delimiter = +\nminimal_backoff_time = 1s\n"
                         "maximal_backoff_time = 2s\nqueue_run_delay = 1s\n"
                         % (self.aliases, home_mailbox, self.mailspool)) + main_cf_extra
        with open(os.path.join(self.confdir, "main.cf"), "w") as f:
            f.write(self.main_cf)
        # Not as root the mail goes to our own Maildir, which may hold older messages.
        self.before = set(self.maildir_files(self.users[0]))
        r = self.run("postalias", self.aliases)
        assert r.returncode == 0, r.stderr

    def queued(self):
        return sum(len(self.queue(q)) for q in ("maildrop", "incoming", "active", "deferred", "hold"))

    def messages(self, user):
        """The texts of the messages in user's mailbox, in no particular order."""
        if self.mailbox == "maildir":
            out = []
            for p in self.maildir_files(user):
                if p not in self.before:
                    with open(p) as f:
                        out.append(f.read())
            return out
        path = os.path.join(self.mailspool, user)
        if not os.path.exists(path):
            return []
        with open(path) as f:
            text = f.read()
        return [m for m in re.split(r"\n\n(?=From )", text) if m.strip()]

    @staticmethod
    def maildir_files(user):
        home = pwd.getpwnam(user).pw_dir
        return glob.glob(os.path.join(home, "Maildir", "new", "*")) + \
            glob.glob(os.path.join(home, "Maildir", "cur", "*"))

    def stop(self):
        super().stop()
        if ROOT:
            for u in self.users:
                subprocess.run(["userdel", "-r", u], capture_output=True)


@pytest.fixture(params=["maildir", "mbox"])
def inst(request):
    i = Instance(request.param)
    yield i
    i.stop()


@pytest.fixture
def maildir_inst():
    i = Instance("maildir")
    yield i
    i.stop()


def test_local_user_gets_message_once_and_queue_empties(inst):
    inst.start()
    user = inst.users[0]
    inst.sendmail("-f", "alice@example.org", user + "+tag", input="Subject: hello\n\nbody text\n")
    assert wait_for(lambda: inst.messages(user) and inst.queued() == 0, 15), inst.log()
    time.sleep(1.5)  # no second copy arrives
    [msg] = inst.messages(user)
    if inst.mailbox == "mbox":
        assert msg.startswith("From alice@example.org ")
    assert "Delivered-To: %s+tag@mail.example.com\n" % user in msg
    assert "Return-Path: <alice@example.org>\n" in msg
    assert "Subject: hello\n" in msg and "\n\nbody text\n" in msg
    assert inst.queued() == 0
    assert os.listdir(os.path.join(inst.spool, "defer")) == []
    log = inst.log()
    assert "status=sent" in log and ": removed" in log


@pytest.mark.skipif(not ROOT, reason="needs two users")
def test_alias_to_two_users(maildir_inst):
    inst = maildir_inst
    inst.start()
    inst.sendmail("lead@localhost", input="Subject: to the team\n\nhi\n")
    a, b, c = inst.users
    assert wait_for(lambda: inst.messages(a) and inst.messages(b) and inst.queued() == 0, 15), inst.log()
    time.sleep(1)
    assert len(inst.messages(a)) == 1 and len(inst.messages(b)) == 1
    assert inst.messages(c) == []
    assert "Delivered-To: %s@mail.example.com\n" % a in inst.messages(a)[0]  # qualified with $myorigin


def test_unknown_user_without_bounce_service_is_kept_with_its_bounce_log(maildir_inst):
    """No bounce service: the recipient is marked done once its reason is in bounce/ID,
    and the message waits in deferred until the notice can be sent."""
    inst = maildir_inst
    inst.start()
    inst.sendmail("nosuchuser12345", input="Subject: lost?\n\nno\n")
    assert wait_for(lambda: inst.queue("deferred") and "notice not sent" in inst.log(), 15), inst.log()
    [qid] = inst.queue("deferred")
    assert inst.queued() == 1
    log = inst.log()
    assert "%s: to=<nosuchuser12345@mail.example.com>" % qid in log
    assert "status=bounced (5.1.1 user unknown)" in log and "%s: removed" % qid not in log
    with open(os.path.join(inst.spool, "bounce", qid)) as f:
        assert "reason=user unknown" in f.read()


def test_remote_domain_is_deferred_with_reason_in_mailq(maildir_inst):
    inst = maildir_inst
    inst.start()
    user = inst.users[0]
    inst.sendmail("bob@example.net", user, input="Subject: mixed\n\nx\n")
    assert wait_for(lambda: inst.queue("deferred") and inst.messages(user), 15), inst.log()
    r = inst.run("postqueue", "-p")
    assert r.returncode == 0, r.stderr
    # Routed to the smtp transport, which this instance's master.cf does not run.
    assert "(connect to smtp: " in r.stdout, r.stdout
    assert "bob@example.net" in r.stdout
    rcpt_lines = [l.strip() for l in r.stdout.splitlines() if l.startswith(" ")]
    assert "bob@example.net" in rcpt_lines
    assert "%s@mail.example.com" % user not in rcpt_lines  # delivered, not listed
    time.sleep(3)  # retried, still kept, the local copy not repeated
    assert inst.queued() == 1
    assert len(inst.messages(user)) == 1


def test_local_killed_during_batch_delivers_each_once(maildir_inst):
    inst = maildir_inst
    inst.start()
    user = inst.users[0]
    for i in range(20):
        inst.sendmail(user, input="Subject: n%d\n\nbody %d\n" % (i, i))
    assert wait_for(lambda: len(inst.messages(user)) >= 1, 15), inst.log()
    killed = 0
    for _ in range(3):
        for p in inst.pids("local"):  # the agents and their delivery children
            try:
                os.kill(p, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass  # a delivery child that just finished
        time.sleep(0.2)
    assert killed
    assert wait_for(lambda: len(inst.messages(user)) >= 20 and inst.queued() == 0, 40), inst.log()
    time.sleep(1.5)
    msgs = inst.messages(user)
    subjects = sorted(m.split("Subject: ")[1].split("\n")[0] for m in msgs)
    assert subjects == sorted("n%d" % i for i in range(20))


def test_alias_to_command_is_deferred_not_lost(maildir_inst):
    inst = maildir_inst
    inst.start()
    inst.sendmail("pipe", input="Subject: to a command\n\nx\n")
    assert wait_for(lambda: inst.queue("deferred"), 15), inst.log()
    r = inst.run("postqueue", "-p")
    assert "(delivery to a command is not supported yet)" in r.stdout, r.stdout
    assert inst.queue("hold") == []


@pytest.mark.skipif(ROOT, reason="only local without root refuses other users")
def test_not_root_defers_other_users(maildir_inst):
    inst = maildir_inst
    inst.start()
    inst.sendmail("root", input="Subject: for root\n\nx\n")
    assert wait_for(lambda: inst.queue("deferred"), 15), inst.log()
    r = inst.run("postqueue", "-p")
    assert "cannot deliver as another user" in r.stdout, r.stdout
