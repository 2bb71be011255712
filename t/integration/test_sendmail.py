"""sendmail(1), the submission side: the real program reads a message on standard
input and leaves one complete queue file in queue_directory/maildrop, which
postcat -q and mailq then show (pickup, which would move it on, does not run here).
Every refusal must leave maildrop empty: no queue file and no temporary file."""
import os
import pwd
import resource
import subprocess

import pytest

from conftest import BIN, program

FOLDERS = ["maildrop", "incoming", "active", "deferred", "hold", "corrupt", "bounce", "defer", "trace",
           "private", "public", "pid"]


@pytest.fixture
def spool(tmp_path, run):
    path = tmp_path / "spool"
    for f in FOLDERS:
        os.makedirs(path / f)
    run.write_main_cf("queue_directory = %s\nmyhostname = mail.example.com\ncommand_directory = %s\n"
                      % (path, BIN))
    return path


def maildrop(spool):
    return sorted(os.listdir(spool / "maildrop"))


def the_message(spool):
    names = maildrop(spool)
    assert len(names) == 1, names
    return names[0]


def envelope_and_content(run, qid):
    r = run("postcat", "-q", qid)
    assert r.returncode == 0, r.stderr
    env, rest = r.stdout.split("*** MESSAGE CONTENTS", 1)
    content = rest.split("***\n", 1)[1]
    content, extracted = content.split("*** HEADER EXTRACTED", 1)
    return env, content, extracted


def login():
    return pwd.getpwuid(os.getuid()).pw_name


def test_plain_submission_is_queued_in_maildrop(run, spool):
    r = run("sendmail", "bob@example.net", "Carol <carol@example.org>",
            input="Subject: hello\n\nfirst line\n..two dots stay\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""
    qid = the_message(spool)
    mode = os.stat(spool / "maildrop" / qid).st_mode & 0o777
    assert mode == 0o744  # complete: owner-execute set, readable by pickup
    env, content, _ = envelope_and_content(run, qid)
    assert "sender: %s@mail.example.com\n" % login() in env
    assert "recipient: bob@example.net\nrecipient: carol@example.org\n" in env
    assert content == "Subject: hello\n\nfirst line\n..two dots stay\n"
    q = run("mailq")
    assert q.returncode == 0, q.stderr
    assert qid in q.stdout and "bob@example.net" in q.stdout and "carol@example.org" in q.stdout
    assert "1 Request." in q.stdout


def test_extract_recipients_from_header_and_strip_bcc(run, spool):
    message = ("From: me@example.com\nTo: Ann <ann@example.net>, \"Doe, J.\" <jd@example.net>\n"
               "Cc: group: cc1@example.org, cc2@example.org;\n"
               "Bcc: secret@example.org,\n  (folded) hidden@example.org\nSubject: t\n\nbody\n")
    r = run("sendmail", "-t", "extra@example.com", "ann@example.net", input=message)
    assert r.returncode == 0, r.stderr
    env, content, extracted = envelope_and_content(run, the_message(spool))
    assert "recipient: extra@example.com\nrecipient: ann@example.net\n" in env
    assert extracted.count("recipient:") == 5
    for a in ["jd@example.net", "cc1@example.org", "cc2@example.org", "secret@example.org", "hidden@example.org"]:
        assert "recipient: %s\n" % a in extracted
    assert "Bcc" not in content and "secret" not in content and "hidden" not in content
    assert content.startswith("From: me@example.com\nTo: Ann")
    assert content.endswith("Subject: t\n\nbody\n")


def test_resent_headers_take_precedence(run, spool):
    message = "To: old@example.net\nResent-To: new@example.net\nResent-Bcc: rb@example.net\n\nx\n"
    r = run("sendmail", "-t", input=message)
    assert r.returncode == 0, r.stderr
    env, content, extracted = envelope_and_content(run, the_message(spool))
    assert "recipient: new@example.net" in extracted and "rb@example.net" in extracted
    assert "old@example.net" not in env + extracted
    assert "Resent-Bcc" not in content


def test_sender_and_full_name(run, spool):
    r = run("sendmail", "-f", "Boss <boss@Example.COM>", "-F", "The Boss", "u@example.net", input="x\n")
    assert r.returncode == 0, r.stderr
    env, _, _ = envelope_and_content(run, the_message(spool))
    assert "sender: boss@example.com\n" in env
    assert "named_attribute: full_name=The Boss\n" in env


def test_null_sender_with_r(run, spool):
    r = run("sendmail", "-r", "<>", "u@example.net", input="x\n")
    assert r.returncode == 0, r.stderr
    env, _, _ = envelope_and_content(run, the_message(spool))
    assert "sender: \n" in env
    assert "MAILER-DAEMON" in run("mailq").stdout


def test_single_dot_ends_input_without_i(run, spool):
    r = run("sendmail", "u@example.net", input="Subject: d\n\nbefore\n.\nafter\n")
    assert r.returncode == 0, r.stderr
    _, content, _ = envelope_and_content(run, the_message(spool))
    assert content == "Subject: d\n\nbefore\n"


@pytest.mark.parametrize("flag", ["-i", "-oi"])
def test_single_dot_is_text_with_i(run, spool, flag):
    r = run("sendmail", flag, "u@example.net", input="Subject: d\n\nbefore\n.\nafter")
    assert r.returncode == 0, r.stderr
    _, content, _ = envelope_and_content(run, the_message(spool))
    assert content == "Subject: d\n\nbefore\n.\nafter\n"


def test_crlf_becomes_lf_and_from_line_dropped(run, spool):
    r = run("sendmail", "u@example.net", input="From someone Mon Jan 1\r\nSubject: c\r\n\r\nline\r\n.\r\n")
    assert r.returncode == 0, r.stderr
    _, content, _ = envelope_and_content(run, the_message(spool))
    assert content == "Subject: c\n\nline\n"


def test_oversize_message_is_refused(run, spool):
    with open(os.path.join(run.confdir, "main.cf"), "a") as f:
        f.write("message_size_limit = 1000\n")
    r = run("sendmail", "u@example.net", input="Subject: big\n\n" + ("x" * 70 + "\n") * 100)
    assert r.returncode == 65, r.stderr
    assert "message file too big" in r.stderr
    assert maildrop(spool) == []
    r = run("sendmail", "u@example.net", input="Subject: small\n\nok\n")
    assert r.returncode == 0, r.stderr


def test_no_recipients(run, spool):
    r = run("sendmail", "-t", input="Subject: nobody\n\nx\n")
    assert r.returncode == 64
    assert "No recipient addresses found in message header" in r.stderr
    r = run("sendmail", input="Subject: nobody\n\nx\n")
    assert r.returncode == 64
    assert "Recipient addresses must be specified" in r.stderr
    assert maildrop(spool) == []


@pytest.mark.parametrize("bad", ["John Doe", "a@b@c", "<unterminated@example.com", "@example.com"])
def test_bad_recipient_argument_is_refused(run, spool, bad):
    r = run("sendmail", "good@example.net", bad, input="x\n")
    assert r.returncode == 64, r.stderr
    assert "bad recipient address" in r.stderr
    assert maildrop(spool) == []


def test_bad_header_address_is_refused(run, spool):
    r = run("sendmail", "-t", input="To: ok@example.net, Broken Name\n\nx\n")
    assert r.returncode == 65, r.stderr
    assert "unable to extract recipients" in r.stderr
    assert maildrop(spool) == []


def test_bad_sender_is_refused(run, spool):
    r = run("sendmail", "-f", "a b c", "u@example.net", input="x\n")
    assert r.returncode == 64, r.stderr
    assert maildrop(spool) == []


def test_missing_maildrop_is_a_temporary_failure(run, spool):
    os.rmdir(spool / "maildrop")
    r = run("sendmail", "u@example.net", input="x\n")
    assert r.returncode == 75, r.stderr
    assert "maildrop" in r.stderr


def test_write_failure_leaves_nothing_behind(run, spool):
    # A file size limit makes the writes fail as a full disk does.
    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))
    env = dict(os.environ, POSTERN_CONFIG_DIR=run.confdir)
    r = subprocess.run([program("sendmail"), "u@example.net"], input="Subject: s\n\n" + "y" * 100000 + "\n",
                       capture_output=True, text=True, env=env, preexec_fn=small_files, timeout=60)
    assert r.returncode == 75, r.stderr
    assert "error writing queue file" in r.stderr
    assert maildrop(spool) == []


def test_addresses_never_reach_a_shell(run, spool, tmp_path):
    evil = '"x;touch pwned;$(touch pwned2)"@example.net'
    env = dict(os.environ, POSTERN_CONFIG_DIR=run.confdir)
    r = subprocess.run([program("sendmail"), evil], input="x\n", capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    env, _, _ = envelope_and_content(run, the_message(spool))
    assert "recipient: x;touch pwned;$(touch pwned2)@example.net\n" in env
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()


def test_bp_lists_the_queue(run, spool):
    r = run("sendmail", "-bp")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Mail queue is empty\n"
    assert run("sendmail", "q@example.net", input="x\n").returncode == 0
    r = run("sendmail", "-bp")
    assert r.returncode == 0, r.stderr
    assert the_message(spool) in r.stdout and "q@example.net" in r.stdout
    assert r.stdout == run("postqueue", "-p").stdout


def test_bs_speaks_smtp_on_standard_input(run, spool):
    dialogue = ("EHLO client\r\nMAIL FROM:<ann@example.org>\r\nRCPT TO:<bob@example.net>\r\n"
                "RCPT TO:bad\r\nDATA\r\nSubject: over a pipe\r\n\r\n..leading dot\r\n.\r\n"
                "DATA\r\nFOO\r\nMAIL FROM:<>\r\nRCPT TO:<x@example.net>\r\nDATA\r\ncut short\r\n")
    r = run("sendmail", "-bs", input=dialogue)
    assert r.returncode == 0, r.stderr
    replies = [l.rstrip("\r") for l in r.stdout.splitlines() if l]
    assert replies[0].startswith("220 ")
    assert replies[-11:] == [
        "250 ENHANCEDSTATUSCODES", "250 2.1.0 Ok", "250 2.1.5 Ok", "501 5.1.3 Bad recipient address syntax",
        "354 End data with <CR><LF>.<CR><LF>", "250 2.0.0 Ok: queued as " + the_message(spool),
        "503 5.5.1 Error: need MAIL command", "502 5.5.2 Error: command not recognized", "250 2.1.0 Ok",
        "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>"]
    # One message: the one cut short by the end of input is not queued.
    env, content, _ = envelope_and_content(run, the_message(spool))
    assert "sender: ann@example.org" in env and "recipient: bob@example.net" in env
    assert content == "Subject: over a pipe\n\n.leading dot\n"


def test_unsupported_modes_say_so(run, spool):
    r = run("sendmail", "-bv", "x@example.net", input="")
    assert r.returncode == 69
    assert "not supported yet" in r.stderr
    r = run("sendmail", "-q")
    assert r.returncode == 75  # postqueue -f: the queue manager is not running
    assert "mail system is down" in r.stderr
    r = run("sendmail", "-n", "u@example.net", input="x\n")
    assert r.returncode == 64
    assert maildrop(spool) == []


def test_config_chosen_with_C(tmp_path, spool, run):
    env = dict(os.environ)
    env.pop("POSTERN_CONFIG_DIR", None)
    r = subprocess.run([program("sendmail"), "-C", os.path.join(run.confdir, "main.cf"), "u@example.net"],
                       input="x\n", capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert len(maildrop(spool)) == 1
