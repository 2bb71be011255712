"""postalias and newaliases: aliases(5) files built into tables, queried, changed,
and rebuilt from alias_database, with bad files refused and old tables kept."""
import os

import pytest

ALIASES = """# system aliases
Postmaster: root
MAILER-DAEMON:postmaster
staff: alice,bob ,
  carol,
# a comment inside the list
\t"|/usr/bin/archive --to staff, now", /var/mail/staff-archive
lists: :include:/etc/postern/lists.txt
"odd name": alice
"""


def test_build_and_query(run, tmp_path):
    src = tmp_path / "aliases"
    src.write_text(ALIASES)
    r = run("postalias", src)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "aliases.db").exists()
    q = lambda key: run("postalias", "-q", key, src)
    assert (q("postmaster").returncode, q("postmaster").stdout) == (0, "root\n")
    assert q("POSTMASTER").stdout == "root\n"
    assert q("mailer-daemon").stdout == "postmaster\n"
    assert q("staff").stdout == 'alice, bob, carol, "|/usr/bin/archive --to staff, now", /var/mail/staff-archive\n'
    assert q("lists").stdout == ":include:/etc/postern/lists.txt\n"
    assert q("odd name").stdout == "alice\n"
    r = q("nobody")
    assert (r.returncode, r.stdout) == (1, "")
    r = run("postalias", "-s", src)
    assert sorted(line.split("\t")[0] for line in r.stdout.splitlines()) == [
        "lists", "mailer-daemon", "odd name", "postmaster", "staff"]


@pytest.mark.parametrize("text, line, what", [
    ("root: admin\nno colon here\n", 2, "missing ':' after the alias name"),
    ("root: admin\n: nobody\n", 2, "empty alias name"),
    ("root: admin\n\nlonely:\n", 3, 'no value for alias "lonely"'),
    ("root: admin\nbad: \"|unclosed\n", 2, "missing closing double quote"),
    ("  root: admin\n", 1, "continuation line with nothing to continue"),
    ("root: admin\nstaff: alice\n  bob\n", 2, 'white space in "alice bob" (a missing comma?'),
])
def test_bad_aliases_leave_old_table(run, tmp_path, text, line, what):
    src = tmp_path / "aliases"
    src.write_text("root: old\n")
    assert run("postalias", src).returncode == 0
    src.write_text(text)
    r = run("postalias", src)
    assert r.returncode != 0
    assert f"postalias: fatal: {src}:{line}: {what}" in r.stderr
    assert run("postalias", "-q", "root", src).stdout == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "etc") == ["aliases", "aliases.db"]


def test_duplicates_delete_and_case(run, tmp_path):
    src = tmp_path / "aliases"
    src.write_text("root: first\nother: x\nROOT: second\n")
    r = run("postalias", src)
    assert r.returncode == 0
    assert r.stderr == f'postalias: warning: {src}:3: duplicate entry: "root"\n'
    assert run("postalias", "-q", "root", src).stdout == "first\n"
    assert run("postalias", "-r", src).returncode == 0
    assert run("postalias", "-q", "root", src).stdout == "second\n"
    assert run("postalias", "-d", "Root", src).returncode == 0
    assert run("postalias", "-d", "root", src).returncode == 1
    assert run("postalias", "-s", src).stdout == "other\tx\n"
    assert run("postalias", "-f", src).returncode == 0
    assert run("postalias", "-f", "-q", "ROOT", src).stdout == "second\n"


def test_newaliases_rebuilds_alias_database(run, confdir, tmp_path):
    (tmp_path / "aliases").write_text("postmaster: root\n")
    (tmp_path / "more").write_text("abuse: postmaster\n")
    run.write_main_cf(f"alias_database = hash:{tmp_path}/aliases, btree:{tmp_path}/more\n"
                      f"alias_maps = $alias_database\n")
    r = run("newaliases")
    assert r.returncode == 0, r.stderr
    assert run("postalias", "-q", "postmaster", f"hash:{tmp_path}/aliases").stdout == "root\n"
    assert run("postalias", "-q", "abuse", f"btree:{tmp_path}/more").stdout == "postmaster\n"
    # A later edit is picked up by the next run; -c names the configuration directly.
    (tmp_path / "aliases").write_text("postmaster: admin\n")
    r = run("newaliases", "-c", confdir, env={"POSTERN_CONFIG_DIR": str(tmp_path / "nowhere")})
    assert r.returncode == 0, r.stderr
    assert run("postalias", "-q", "postmaster", f"hash:{tmp_path}/aliases").stdout == "admin\n"


def test_newaliases_uses_default_type_and_reports_errors(run, tmp_path):
    (tmp_path / "aliases").write_text("postmaster root\n")
    run.write_main_cf(f"default_database_type = btree\nalias_database = {tmp_path}/aliases\n")
    r = run("newaliases")
    assert r.returncode != 0
    assert f"newaliases: fatal: {tmp_path}/aliases:1: missing ':' after the alias name" in r.stderr
    (tmp_path / "aliases").write_text("postmaster: root\n")
    assert run("newaliases").returncode == 0
    assert run("postalias", "-q", "postmaster", f"btree:{tmp_path}/aliases").stdout == "root\n"


def test_bad_usage(run):
    r = run("newaliases", "extra")
    assert r.returncode == 64
    assert "newaliases takes no table names" in r.stderr and "usage: newaliases" in r.stderr
    r = run("newaliases", "-q", "x")
    assert r.returncode == 64
    r = run("postalias")
    assert r.returncode == 64
    assert "usage: postalias" in r.stderr
