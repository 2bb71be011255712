"""postconf run as an administrator runs it: showing, expanding and editing main.cf,
showing master.cf, and refusing bad input without changing anything."""
import os
import stat


def test_defaults_and_non_defaults(run):
    run.write_main_cf("myhostname = mx.example.org\n# a comment\nrelayhost = [smart.example.net]:587\n")
    r = run("postconf", "-n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "myhostname = mx.example.org\nrelayhost = [smart.example.net]:587\n"
    r = run("postconf", "-d", "myorigin", "message_size_limit", "smtpd_tls_auth_only")
    assert r.stdout == "myorigin = $myhostname\nmessage_size_limit = 10240000\nsmtpd_tls_auth_only = yes\n"
    r = run("postconf")
    lines = r.stdout.splitlines()
    assert "relayhost = [smart.example.net]:587" in lines
    assert "mail_name = Postern" in lines
    assert lines == sorted(lines)
    assert len(lines) > 50


def test_expansion_and_values_only(run):
    run.write_main_cf("myhostname = mx.example.org\nmy_list = a, b\nmynetworks = $my_list c\n")
    r = run("postconf", "-h", "mydestination")
    assert r.stdout == "$myhostname, localhost.$mydomain, localhost\n"
    r = run("postconf", "-x", "-h", "mydestination", "mynetworks")
    assert r.stdout == "mx.example.org, localhost.example.org, localhost\na, b c\n"


def test_unknown_parameter_and_unused_warning(run):
    run.write_main_cf("relay_host = typo\n")
    r = run("postconf", "no_such_thing")
    assert r.returncode == 1
    assert "postconf: warning: no_such_thing: unknown parameter" in r.stderr
    assert "main.cf:1: unused parameter: relay_host=typo" in r.stderr


def test_bad_main_cf_names_file_and_line(run, confdir):
    run.write_main_cf("myhostname = a\nthis line is wrong\n")
    r = run("postconf", "-n")
    assert r.returncode != 0
    assert f"{confdir}/main.cf:2: missing '=' after parameter name" in r.stderr
    run.write_main_cf("max_use = many\nrelayhost = $undefined_one\n")
    r = run("postconf", "max_use")
    assert f'{confdir}/main.cf:1: invalid value for max_use: "many"' in r.stderr
    assert f"{confdir}/main.cf:2: undefined parameter $undefined_one" in r.stderr


def test_edit_is_atomic_keeps_comments_and_mode(run, confdir):
    main_cf = confdir / "main.cf"
    main_cf.write_text("# keep this comment\nrelayhost = old\n    still old\nmax_use = 10\n")
    os.chmod(main_cf, 0o640)
    inode = os.stat(main_cf).st_ino
    r = run("postconf", "-e", "relayhost = [new.example]:25", "recipient_delimiter=+")
    assert r.returncode == 0, r.stderr
    assert main_cf.read_text() == ("# keep this comment\nrelayhost = [new.example]:25\nmax_use = 10\n"
                                   "recipient_delimiter = +\n")
    assert stat.S_IMODE(os.stat(main_cf).st_mode) == 0o640
    assert os.stat(main_cf).st_ino != inode  # replaced by rename, not rewritten in place
    r = run("postconf", "-X", "max_use")
    assert r.returncode == 0
    assert "max_use" not in main_cf.read_text()
    assert not [f for f in os.listdir(confdir) if ".tmp." in f]


def test_bad_edit_changes_nothing(run, confdir):
    main_cf = confdir / "main.cf"
    main_cf.write_text("max_use = 10\n")
    for bad in ["max_use=lots", "smtpd_tls_security_level=sometimes", "relayhost=$nowhere",
                "smtpd_timeout=5 fortnights"]:
        r = run("postconf", "-e", bad)
        assert r.returncode != 0, bad
        assert "edit refused" in r.stderr, r.stderr
        assert main_cf.read_text() == "max_use = 10\n"
    r = run("postconf", "-e", "no-equals-sign")
    assert r.returncode == 64 and "-e needs name=value" in r.stderr
    assert main_cf.read_text() == "max_use = 10\n"


def test_master_cf(run, confdir):
    (confdir / "master.cf").write_text(
        "# services\n"
        "2525      inet  n - n - - smtpd\n"
        "  -o syslog_name=postern/test\n"
        "  -o { smtpd_relay_restrictions = permit_mynetworks, reject }\n"
        "qmgr      unix  n - n 300 1 qmgr\n")
    r = run("postconf", "-M")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["2525", "inet", "n", "y", "n", "-", "-", "smtpd", "-o",
                                "syslog_name=postern/test", "-o", "{", "smtpd_relay_restrictions", "=",
                                "permit_mynetworks,", "reject", "}"]
    assert lines[1].split() == ["qmgr", "unix", "n", "y", "n", "300", "1", "qmgr"]
    r = run("postconf", "-M", "qmgr/unix")
    assert r.stdout.split() == ["qmgr", "unix", "n", "y", "n", "300", "1", "qmgr"]
    (confdir / "master.cf").write_text("smtp inet n - n - - smtpd\nsmtp inet n - n - - smtpd\n")
    r = run("postconf", "-M")
    assert r.returncode != 0
    assert f"{confdir}/master.cf:2: duplicate service smtp/inet" in r.stderr


def test_shipped_configuration_is_valid(run, confdir):
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for name in ("main.cf", "master.cf"):
        (confdir / name).write_text(open(os.path.join(top, "conf", name)).read())
    r = run("postconf", "-n")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    r = run("postconf", "-M")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert len(r.stdout.splitlines()) >= 15


def test_usage_errors(run):
    for args in (["-n", "-d"], ["-e"], ["-Z"], ["-e", "a=1", "-X"]):
        r = run("postconf", *args)
        assert r.returncode == 64, args
        assert "usage: postconf" in r.stderr


def test_table_types(run):
    r = run("postconf", "-m")
    assert r.returncode == 0
    assert r.stdout.split() == ["hash", "btree", "texthash", "inline", "static", "regexp", "mysql"]
