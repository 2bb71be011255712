"""`make run` (tools/run-instance): README's first command sets up an instance on the
embedded default and runs it in the foreground; a message sent with the printed
command lands in the printed mailbox, and the suite stops cleanly on SIGTERM."""
import os
import pwd
import signal
import smtplib
import ssl
import subprocess
import tempfile

from conftest import BUILD, TOP, program, wait_for


def test_make_run_starts_a_working_instance():
    inst = tempfile.mkdtemp(prefix="postern-run-")
    os.chmod(inst, 0o755)
    env = dict(os.environ, POSTERN_INSTANCE=inst, BUILD=os.path.relpath(BUILD, TOP))
    log_path = os.path.join(inst, "terminal.log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([os.path.join(TOP, "tools", "run-instance")], stdout=log, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
    try:
        conf = os.path.join(inst, "etc")
        pid_file = os.path.join(inst, "spool", "pid", "master.pid")
        assert wait_for(lambda: os.path.exists(pid_file) and os.path.getsize(pid_file) > 0, 30), open(log_path).read()
        text = open(log_path).read()
        assert "Instance ready in " + inst in text
        user = pwd.getpwuid(os.getuid()).pw_name
        r = subprocess.run([program("sendmail"), "-c", conf, user], input=b"Subject: make run\n\nhello\n",
                           capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
        mbox = os.path.join(inst, "mail", user)
        assert wait_for(lambda: os.path.exists(mbox) and b"Subject: make run" in open(mbox, "rb").read(), 30), \
            open(log_path).read()
        # The log is on the terminal: the delivery shows there.
        assert wait_for(lambda: "status=sent" in open(log_path).read(), 10)
        # Submission with the instance's own certificate: STARTTLS on 2587, then AUTH is offered.
        smtp = smtplib.SMTP("127.0.0.1", 2587, timeout=10)
        smtp.ehlo()
        assert smtp.has_extn("starttls") and not smtp.has_extn("auth")
        smtp.starttls(context=ssl._create_unverified_context())
        smtp.ehlo()
        assert smtp.has_extn("auth")
        smtp.quit()
        assert "fatal" not in open(log_path).read()
        r = subprocess.run([program("postern"), "-c", conf, "status"], capture_output=True, text=True)
        assert r.returncode == 0 and "is running" in r.stdout
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert not os.path.exists(os.path.join(inst, "spool", "pid", "master.pid")) or \
        subprocess.run([program("postern"), "-c", os.path.join(inst, "etc"), "status"]).returncode == 1
