"""A whole Postern system run by master in a temporary folder that every daemon can
read (mail_owner may not be the test's user): the daemons named are copied into its
daemon_directory, main.cf and master.cf are written, and helpers start it, read its
queues and log, submit mail, find its processes and stop it."""
import grp
import os
import pwd
import shutil
import tempfile

from conftest import Runner, program

ROOT = os.geteuid() == 0


class MailInstance:
    def __init__(self, prefix, daemons, master_cf, main_cf_extra=""):
        self.base = tempfile.mkdtemp(prefix=prefix)
        os.chmod(self.base, 0o755)
        self.confdir = os.path.join(self.base, "etc")
        self.spool = os.path.join(self.base, "spool")
        self.daemons = os.path.join(self.base, "daemons")
        self.maillog = os.path.join(self.base, "maillog")
        for d in (self.confdir, self.daemons):
            os.mkdir(d)
            os.chmod(d, 0o755)
        for name in ["master"] + list(daemons):
            shutil.copy(program(name), os.path.join(self.daemons, name))
        with open(self.maillog, "w"):
            pass
        os.chmod(self.maillog, 0o666)
        if ROOT:
            self.owner, self.group = "nobody", "mail"
        else:
            self.owner, self.group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
        self.main_cf = ("queue_directory = %s\ndaemon_directory = %s\nmail_owner = %s\nsetgid_group = %s\n"
                        "maillog_file = %s\nmyhostname = mail.example.com\n"
                        % (self.spool, self.daemons, self.owner, self.group, self.maillog)) + main_cf_extra
        with open(os.path.join(self.confdir, "main.cf"), "w") as f:
            f.write(self.main_cf)
        with open(os.path.join(self.confdir, "master.cf"), "w") as f:
            f.write(master_cf)
        self.run = Runner(self.confdir)

    def start(self):
        r = self.run("postern", "-c", self.confdir, "start")
        assert r.returncode == 0, r.stderr

    def queue(self, name):
        path = os.path.join(self.spool, name)
        if not os.path.isdir(path):
            return []
        return sorted(n for n in os.listdir(path) if not n.startswith("tmp."))

    def log(self):
        with open(self.maillog) as f:
            return f.read()

    def sendmail(self, *args, input):
        r = self.run("sendmail", *args, input=input)
        assert r.returncode == 0, r.stderr

    def postcat(self, qid):
        r = self.run("postcat", "-q", qid)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def pids(self, name):
        """The processes running daemons/NAME."""
        path = os.path.join(self.daemons, name)
        found = []
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                if os.readlink("/proc/%s/exe" % p) == path:
                    found.append(int(p))
            except OSError:
                pass
        return found

    def stop(self):
        self.run("postern", "-c", self.confdir, "stop")
        shutil.rmtree(self.base, ignore_errors=True)
