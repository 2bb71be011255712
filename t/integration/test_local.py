"""local(8) deliveries beyond the mailbox, with real users under master (as root):
alias targets that are commands, files and :include: files, ~/.forward, owner-
aliases, command exit statuses and time limits, address data that tries to reach a
shell, Delivered-To loops, and a /var/mail-like spool with a planted link."""
import grp
import os
import pwd
import subprocess
import time

import pytest

from conftest import wait_for
from instance import ROOT
from test_qmgr_local import Instance as LocalInstance

pytestmark = pytest.mark.skipif(not ROOT, reason="needs real users and their rights")

RECORD = """#!/bin/sh
# Records what a delivery command got: stdin, environment, uid, gid.
out="$1"
cat > "$out.msg"
env | sort > "$out.env"
id -u > "$out.uid"
id -g > "$out.gid"
exit "${2:-0}"
"""


class Instance(LocalInstance):
    """The qmgr/local system with aliases a test chooses and a command that records."""

    def __init__(self, mailbox="maildir", main_cf_extra=""):
        super().__init__(mailbox, main_cf_extra=main_cf_extra)
        self.bin = os.path.join(self.base, "bin")
        self.out = os.path.join(self.base, "out")
        os.mkdir(self.bin, 0o755)
        os.mkdir(self.out)
        os.chmod(self.out, 0o1777)
        self.record = os.path.join(self.bin, "record")
        with open(self.record, "w") as f:
            f.write(RECORD)
        os.chmod(self.record, 0o755)

    def set_aliases(self, text, owner=None):
        with open(self.aliases, "w") as f:
            f.write(text)
        r = self.run("postalias", self.aliases)
        assert r.returncode == 0, r.stderr
        if owner:
            pw = pwd.getpwnam(owner)
            os.chown(self.aliases + ".db", pw.pw_uid, pw.pw_gid)

    def user_file(self, user, name, text, mode=0o644, owner=None):
        """Writes HOME/name for user (owned by owner, default the user)."""
        pw = pwd.getpwnam(owner or user)
        path = os.path.join(pwd.getpwnam(user).pw_dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chown(path, pw.pw_uid, pw.pw_gid)
        os.chmod(path, mode)
        return path

    def recorded(self, name):
        base = os.path.join(self.out, name)
        if not os.path.exists(base + ".gid"):
            return None
        got = {}
        for part in ("msg", "env", "uid", "gid"):
            with open(base + "." + part) as f:
                got[part] = f.read()
        got["environ"] = dict(line.split("=", 1) for line in got["env"].splitlines() if "=" in line)
        return got

    def wait_log(self, text, timeout=15):
        assert wait_for(lambda: text in self.log(), timeout), self.log()


@pytest.fixture
def inst():
    i = Instance()
    yield i
    i.stop()


def uid_of(name):
    return pwd.getpwnam(name).pw_uid


def test_alias_command_gets_message_and_environment_as_nobody(inst):
    a = inst.users[0]
    inst.set_aliases("cmd: \"|%s %s/cmd\"\n" % (inst.record, inst.out))  # a root-owned table
    inst.start()
    inst.sendmail("-f", "alice@example.org", "cmd+ext", input="Subject: to a command\n\nbody line\n")
    assert wait_for(lambda: inst.recorded("cmd") and inst.queued() == 0, 15), inst.log()
    got = inst.recorded("cmd")
    assert int(got["uid"]) == uid_of("nobody")  # default_privs: the table belongs to root
    assert got["msg"].startswith("From alice@example.org ")
    assert "Delivered-To: cmd+ext@mail.example.com\n" in got["msg"]
    assert "Return-Path: <alice@example.org>\n" in got["msg"]
    assert "Subject: to a command\n" in got["msg"] and got["msg"].endswith("\n\nbody line\n")
    env = got["environ"]
    assert env["SENDER"] == "alice@example.org"
    assert env["RECIPIENT"] == "cmd+ext@mail.example.com"
    assert env["LOCAL"] == "cmd+ext" and env["EXTENSION"] == "ext" and env["DOMAIN"] == "mail.example.com"
    assert env["ORIGINAL_RECIPIENT"] == "cmd+ext@mail.example.com"
    assert env["USER"] == env["LOGNAME"] == "nobody" and env["HOME"] == pwd.getpwnam("nobody").pw_dir
    assert "POSTERN_CONFIG_DIR" not in env  # nothing of local's own environment
    assert "status=sent (2.0.0 delivered to command: %s %s/cmd)" % (inst.record, inst.out) in inst.log()
    assert a not in got["env"]


def test_alias_file_and_command_run_as_the_table_owner(inst):
    a = inst.users[0]
    home = pwd.getpwnam(a).pw_dir
    inst.set_aliases("both: %s/saved, %s/md/, \"|%s %s/both\"\n" % (home, home, inst.record, inst.out), owner=a)
    inst.start()
    inst.sendmail("both", input="Subject: kept\n\nx\n")
    assert wait_for(lambda: inst.recorded("both") and inst.queued() == 0, 15), inst.log()
    assert int(inst.recorded("both")["uid"]) == uid_of(a)
    st = os.stat(os.path.join(home, "saved"))
    assert st.st_uid == uid_of(a) and st.st_mode & 0o777 == 0o600
    with open(os.path.join(home, "saved")) as f:
        text = f.read()
    assert text.startswith("From ") and "Delivered-To: both@mail.example.com\n" in text and "Subject: kept" in text
    [copy] = os.listdir(os.path.join(home, "md", "new"))  # a trailing '/' is a Maildir
    assert os.stat(os.path.join(home, "md", "new", copy)).st_uid == uid_of(a)


def test_include_refused_for_commands_by_default(inst):
    b = inst.users[1]
    inc = inst.user_file(b, "list", "# the list\n\"|%s %s/inc\"\n" % (inst.record, inst.out))
    inst.set_aliases("list: :include:%s\n" % inc)
    inst.start()
    inst.sendmail("list", input="Subject: s\n\nx\n")
    inst.wait_log("status=bounced (5.7.1 mail to command is restricted)")
    assert inst.recorded("inc") is None


def test_include_runs_commands_as_the_file_owner_when_allowed():
    inst = Instance(main_cf_extra="allow_mail_to_commands = alias, forward, include\n")
    try:
        a, b = inst.users[:2]
        inc = inst.user_file(b, "list", "# the list\n\"|%s %s/inc\", %s\n" % (inst.record, inst.out, a))
        inst.set_aliases("list: :include:%s\n" % inc)
        inst.start()
        inst.sendmail("list", input="Subject: included\n\nx\n")
        assert wait_for(lambda: inst.recorded("inc") and inst.messages(a) and inst.queued() == 0, 15), inst.log()
        assert int(inst.recorded("inc")["uid"]) == uid_of(b)
        assert inst.recorded("inc")["environ"]["RECIPIENT"] == "list@mail.example.com"
    finally:
        inst.stop()


def test_include_writable_by_others_is_refused(inst):
    b = inst.users[1]
    inc = inst.user_file(b, "list", "%s\n" % inst.users[0], mode=0o666)
    inst.set_aliases("list: :include:%s\n" % inc)
    inst.start()
    inst.sendmail("list", input="Subject: s\n\nx\n")
    inst.wait_log("is writable by group or others")
    assert wait_for(lambda: inst.queue("deferred"), 15), inst.log()
    assert inst.messages(inst.users[0]) == []


def test_forward_to_file_command_and_own_mailbox(inst):
    a = inst.users[0]
    home = pwd.getpwnam(a).pw_dir
    inst.user_file(a, ".forward", "# mine\n\\%s, %s/copy\n\"|%s %s/fwd\"\n" % (a, home, inst.record, inst.out))
    inst.start()
    inst.sendmail("-f", "s@example.org", a, input="Subject: forwarded\n\nx\n")
    assert wait_for(lambda: inst.recorded("fwd") and inst.messages(a) and inst.queued() == 0, 15), inst.log()
    assert int(inst.recorded("fwd")["uid"]) == uid_of(a)
    assert inst.recorded("fwd")["environ"]["HOME"] == home
    assert os.stat(os.path.join(home, "copy")).st_uid == uid_of(a)
    assert len(inst.messages(a)) == 1


def test_forward_to_another_user(inst):
    a, b = inst.users[:2]
    inst.user_file(a, ".forward", "%s\n" % b)
    inst.start()
    inst.sendmail(a, input="Subject: for b\n\nx\n")
    assert wait_for(lambda: inst.messages(b) and inst.queued() == 0, 15), inst.log()
    assert inst.messages(a) == []
    assert "Delivered-To: %s@mail.example.com\n" % b in inst.messages(b)[0]


@pytest.mark.parametrize("owner,mode,why", [("other", 0o644, "not by"), ("self", 0o666, "writable by group")])
def test_forward_with_bad_owner_or_mode_is_ignored(inst, owner, mode, why):
    a, b = inst.users[:2]
    inst.user_file(a, ".forward", "%s\n" % b, mode=mode, owner=b if owner == "other" else None)
    inst.start()
    inst.sendmail(a, input="Subject: stays\n\nx\n")
    assert wait_for(lambda: inst.messages(a) and inst.queued() == 0, 15), inst.log()
    assert inst.messages(b) == []
    assert ".forward" in inst.log() and why in inst.log()


def test_owner_alias_becomes_the_sender(inst):
    a = inst.users[0]
    inst.set_aliases("list: %s, \"|%s %s/own\"\nowner-list: %s\n" % (a, inst.record, inst.out, inst.users[1]))
    inst.start()
    inst.sendmail("-f", "poster@example.org", "list+digest", input="Subject: list mail\n\nx\n")
    assert wait_for(lambda: inst.recorded("own") and inst.messages(a) and inst.queued() == 0, 15), inst.log()
    assert inst.recorded("own")["environ"]["SENDER"] == "owner-list@mail.example.com"
    assert "Return-Path: <owner-list@mail.example.com>\n" in inst.messages(a)[0]


def test_command_tempfail_is_deferred_and_retried(inst):
    flag = os.path.join(inst.out, "fail")
    with open(flag, "w"):
        pass
    script = os.path.join(inst.bin, "flaky")
    with open(script, "w") as f:
        f.write("#!/bin/sh\n[ -e %s ] && { echo try later; exit 75; }\n%s %s/flaky\n" % (flag, inst.record, inst.out))
    os.chmod(script, 0o755)
    inst.set_aliases("flaky: |%s\n" % script)
    inst.start()
    inst.sendmail("flaky", input="Subject: again\n\nx\n")
    inst.wait_log('4.3.0 Command died with status 75: "%s". Command output: try later' % script)
    assert wait_for(lambda: inst.queue("deferred") or inst.queue("active"), 5)
    assert inst.recorded("flaky") is None
    os.unlink(flag)
    assert wait_for(lambda: inst.recorded("flaky") and inst.queued() == 0, 20), inst.log()


def test_command_exit_67_bounces(inst):
    inst.set_aliases("gone: \"|echo no such person; exit 67\"\n")
    inst.start()
    inst.sendmail("gone", input="Subject: s\n\nx\n")
    inst.wait_log('status=bounced (5.1.1 Command died with status 67: "echo no such person; exit 67". '
                  'Command output: no such person)')


def test_command_past_time_limit_is_killed_and_deferred():
    inst = Instance(main_cf_extra="command_time_limit = 1s\n")
    try:
        marker = os.path.join(inst.out, "slept")
        inst.set_aliases("slow: \"|sleep 60; touch %s\"\n" % marker)
        inst.start()
        start = time.time()
        inst.sendmail("slow", input="Subject: s\n\nx\n")
        inst.wait_log("4.3.0 Command time limit exceeded")
        assert time.time() - start < 10
        assert wait_for(lambda: inst.queue("deferred"), 5), inst.log()
        r = subprocess.run(["pgrep", "-f", "sleep 60; touch %s" % marker], capture_output=True)
        assert r.returncode == 1, r.stdout  # the shell and its sleep are gone
        assert not os.path.exists(marker)
    finally:
        inst.stop()


def test_address_data_never_reaches_a_shell(inst):
    a = inst.users[0]
    home = pwd.getpwnam(a).pw_dir  # the command runs there, as a (the table's owner)
    inst.set_aliases("inj: \"|%s %s/inj\"\n" % (inst.record, inst.out), owner=a)
    inst.start()
    ext = "`touch pw1`$(touch pw2);touch pw3|touch pw5"
    sender = "x`touch${IFS}pw4`${HOME}@example.org"
    inst.sendmail("-f", sender, '"inj+%s"@localhost' % ext, input="Subject: s\n\nx\n")
    assert wait_for(lambda: inst.recorded("inj") and inst.queued() == 0, 15), inst.log()
    env = inst.recorded("inj")["environ"]
    assert env["EXTENSION"] == ext
    assert env["SENDER"] == sender
    assert not [n for n in os.listdir(home) + os.listdir("/") if n.startswith("pw")]


def test_delivered_to_loop_bounces(inst):
    a = inst.users[0]
    inst.start()
    inst.sendmail(a, input="Delivered-To: %s@Mail.Example.COM\nSubject: again?\n\nx\n" % a.upper())
    inst.wait_log("status=bounced (5.4.6 mail forwarding loop for %s@mail.example.com)" % a)
    assert inst.messages(a) == []


@pytest.mark.parametrize("group,mode", [("mail", 0o2775), ("root", 0o1777)])  # Debian's /var/mail; a sticky spool
def test_root_owned_spool_creates_user_mailbox_and_refuses_planted_link(group, mode):
    inst = Instance(mailbox="mbox")
    try:
        a, b = inst.users[:2]
        os.chown(inst.mailspool, 0, grp.getgrnam(group).gr_gid)
        os.chmod(inst.mailspool, mode)
        victim = os.path.join(inst.base, "victim")
        with open(victim, "w") as f:
            f.write("precious\n")
        os.symlink(victim, os.path.join(inst.mailspool, b))
        inst.start()
        inst.sendmail(a, b, input="Subject: spool\n\nx\n")
        assert wait_for(lambda: inst.messages(a), 15), inst.log()
        st = os.lstat(os.path.join(inst.mailspool, a))
        assert st.st_uid == uid_of(a) and st.st_mode & 0o777 == 0o600
        inst.wait_log("mailbox %s/%s is a symbolic link: refused" % (inst.mailspool, b))
        assert wait_for(lambda: inst.queue("deferred"), 15), inst.log()
        with open(victim) as f:
            assert f.read() == "precious\n"
        assert not os.path.exists(os.path.join(inst.mailspool, a + ".lock"))
    finally:
        inst.stop()


def test_remote_alias_target_is_forwarded_through_cleanup(inst):
    a = inst.users[0]
    inst.set_aliases("fwd: far@example.net, %s\nowner-fwd: %s\n" % (a, a))
    inst.start()
    inst.sendmail("-f", "s@example.org", "fwd", input="Subject: onwards\n\nx\n")
    inst.wait_log("to=<far@example.net>, orig_to=<fwd@mail.example.com>, relay=local, status=sent (2.0.0 forwarded as ")
    assert wait_for(lambda: inst.messages(a) and len(inst.queue("deferred")) == 1 and inst.queued() == 1, 15), \
        inst.log()
    [qid] = inst.queue("deferred")  # no smtp yet: the copy for example.net waits
    text = inst.postcat(qid)
    assert "far@example.net" in text and "owner-fwd@mail.example.com" in text
    assert "Delivered-To: fwd@mail.example.com" in text and "Subject: onwards" in text


def test_mailbox_command_delivers_as_the_user():
    # The instance's bin/ is next to its spool: main.cf can name it before it exists.
    inst = Instance(main_cf_extra="mailbox_command = $queue_directory/../bin/boxcmd\n")
    try:
        a = inst.users[0]
        with open(os.path.join(inst.bin, "boxcmd"), "w") as f:
            f.write("#!/bin/sh\nexec %s %s/box-$USER\n" % (inst.record, inst.out))
        os.chmod(os.path.join(inst.bin, "boxcmd"), 0o755)
        inst.start()
        inst.sendmail(a, input="Subject: via procmail-like\n\nx\n")
        assert wait_for(lambda: inst.recorded("box-" + a) and inst.queued() == 0, 15), inst.log()
        assert int(inst.recorded("box-" + a)["uid"]) == uid_of(a)
        assert inst.messages(a) == []  # the command had it, not the Maildir
    finally:
        inst.stop()


def test_unknown_allow_mail_to_files_value_defers_with_the_line():
    inst = Instance(main_cf_extra="allow_mail_to_files = alias, sometimes\n")
    try:
        a = inst.users[0]
        inst.start()
        inst.sendmail(a, input="Subject: s\n\nx\n")
        inst.wait_log('allow_mail_to_files: unknown value "sometimes"')
        assert "main.cf:" in inst.log()
        assert wait_for(lambda: inst.queue("deferred"), 15), inst.log()
        assert inst.messages(a) == []
    finally:
        inst.stop()


def test_forward_loop_between_users_bounces(inst):
    a, b = inst.users[:2]
    inst.user_file(a, ".forward", "%s\n" % b)
    inst.user_file(b, ".forward", "%s\n" % a)
    inst.start()
    inst.sendmail(a, input="Subject: round and round\n\nx\n")
    inst.wait_log("status=bounced (5.4.6 alias expansion too deep")
    assert inst.messages(a) == [] and inst.messages(b) == []


def test_target_reached_twice_gets_one_copy(inst):
    a, b = inst.users[:2]
    inst.set_aliases("team: %s, %s, \"|%s %s/team\"\nall: team, %s, \"|%s %s/team\"\n"
                     % (a, b, inst.record, inst.out, a, inst.record, inst.out))
    inst.start()
    inst.sendmail("all", a, input="Subject: once\n\nx\n")
    assert wait_for(lambda: inst.messages(a) and inst.messages(b) and inst.queued() == 0, 15), inst.log()
    time.sleep(1)
    assert len(inst.messages(a)) == 1 and len(inst.messages(b)) == 1
    assert inst.log().count("delivered to command") == 1
