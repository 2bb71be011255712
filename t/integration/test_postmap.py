"""postmap run as an administrator runs it: building tables, querying every table
type, deleting, listing, and refusing bad input without touching the old table."""
import os
import select
import shutil
import stat
import subprocess

import pytest

from conftest import program

SOURCE = "# virtual aliases\nAlice@Example.com alice\nbob@example.com bob,\n  carol\n\n\"two words\" spaced\n"


def write(path, text, mode=0o644):
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_build_query_found_and_not_found(run, tmp_path):
    src = write(tmp_path / "virtual", SOURCE)
    r = run("postmap", src)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert (tmp_path / "virtual.db").exists()
    r = run("postmap", "-q", "alice@example.com", src)
    assert (r.returncode, r.stdout) == (0, "alice\n")
    r = run("postmap", "-q", "BOB@EXAMPLE.COM", f"hash:{src}")
    assert (r.returncode, r.stdout) == (0, "bob, carol\n")
    r = run("postmap", "-q", "two words", src)
    assert (r.returncode, r.stdout) == (0, "spaced\n")
    r = run("postmap", "-q", "nobody@example.com", src)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "")
    assert [p.name for p in tmp_path.iterdir() if ".tmp." in p.name] == []


def test_permissions_follow_the_source(run, tmp_path):
    src = write(tmp_path / "secret", "k v\n", 0o640)
    assert run("postmap", src).returncode == 0
    assert stat.S_IMODE(os.stat(tmp_path / "secret.db").st_mode) == 0o640
    os.chmod(src, 0o600)
    assert run("postmap", src).returncode == 0
    assert stat.S_IMODE(os.stat(tmp_path / "secret.db").st_mode) == 0o600


def test_query_stdin_answers_line_by_line(run, tmp_path):
    src = write(tmp_path / "map", "one 1\ntwo 2\n")
    assert run("postmap", src).returncode == 0
    proc = subprocess.Popen([program("postmap"), "-q", "-", str(src)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
                            env=dict(os.environ, POSTERN_CONFIG_DIR=run.confdir))
    try:
        answers = []
        for key in ("ONE", "missing", "two"):
            proc.stdin.write(key + "\n")
            proc.stdin.flush()
            if key == "missing":
                continue
            # The answer must come while stdin is still open: no buffering until EOF.
            ready, _, _ = select.select([proc.stdout], [], [], 10)
            assert ready, f"no answer for {key} before end of input"
            answers.append(proc.stdout.readline())
        assert answers == ["ONE\t1\n", "two\t2\n"]
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
        assert proc.stdout.read() == ""
    finally:
        proc.kill()
        proc.wait()
    r = run("postmap", "-q", "-", src, input="nothing\nhere\n")
    assert (r.returncode, r.stdout) == (1, "")


def test_query_stdin_many_keys_at_once(run, tmp_path):
    # More keys than one read of standard input takes, lines split across reads,
    # blank and padded lines, both NUL conventions, a last line without its newline.
    n = 20000
    src = write(tmp_path / "map", "".join(f"key{i}@example.org value{i}\n" for i in range(n)))
    assert run("postmap", src).returncode == 0
    write(tmp_path / "plain", "Plain@Example.org without-nul\n")
    assert run("postmap", "-n", f"hash:{tmp_path}/plain").returncode == 0
    keys = [f"KEY{i}@example.org" if i % 3 == 0 else f"key{i}@example.org" for i in range(0, n, 2)]
    keys += [f"missing{i}" for i in range(500)]
    lines = []
    for i, k in enumerate(keys):
        lines.append(f"  {k}\t" if i % 7 == 0 else k)
        if i % 11 == 0:
            lines.append("")
    lines.append("plain@example.org")
    text = "\n".join(lines + ["key1@example.org"])  # no newline at the end
    r = run("postmap", "-q", "-", src, f"hash:{tmp_path}/plain", input=text)
    assert r.returncode == 0, r.stderr
    expected = [f"{k}\tvalue{int(k[3:].split('@')[0])}" for k in keys if not k.startswith("missing")]
    expected += ["plain@example.org\twithout-nul", "key1@example.org\tvalue1"]
    assert r.stdout.splitlines() == expected


def test_delete_and_list(run, tmp_path):
    src = write(tmp_path / "map", "a 1\nb 2\nc 3\n")
    assert run("postmap", src).returncode == 0
    inode = os.stat(tmp_path / "map.db").st_ino
    r = run("postmap", "-d", "B", src)
    assert r.returncode == 0, r.stderr
    assert os.stat(tmp_path / "map.db").st_ino != inode  # replaced whole, not edited in place
    assert run("postmap", "-d", "b", src).returncode == 1
    assert run("postmap", "-q", "b", src).returncode == 1
    r = run("postmap", "-s", src)
    assert r.returncode == 0
    assert sorted(r.stdout.splitlines()) == ["a\t1", "c\t3"]
    r = run("postmap", "-d", "-", src, input="a\nzz\n")
    assert r.returncode == 0
    assert run("postmap", "-s", src).stdout == "c\t3\n"
    r = run("postmap", "-d", "a", f"btree:{tmp_path}/none")
    assert r.returncode != 0
    assert f"{tmp_path}/none.db: cannot open table: No such file or directory" in r.stderr


def test_concurrent_deletes_are_not_lost(run, tmp_path):
    keys = [f"key{i}" for i in range(24)]
    src = write(tmp_path / "map", "".join(f"{k} v\n" for k in keys) + "keep v\n")
    assert run("postmap", src).returncode == 0
    env = dict(os.environ, POSTERN_CONFIG_DIR=run.confdir)
    procs = [subprocess.Popen([program("postmap"), "-d", k, str(src)], env=env) for k in keys]
    assert [p.wait(timeout=60) for p in procs] == [0] * len(keys)
    assert run("postmap", "-s", src).stdout == "keep\tv\n"


def test_incremental_update_from_stdin(run, tmp_path):
    src = write(tmp_path / "map", "a 1\n")
    assert run("postmap", src).returncode == 0
    r = run("postmap", "-i", src, input="b 2\nA changed\n")
    assert r.returncode == 0
    assert 'postmap: warning: stdin:2: duplicate entry: "a"' in r.stderr
    assert sorted(run("postmap", "-s", src).stdout.splitlines()) == ["a\t1", "b\t2"]
    assert run("postmap", "-i", "-r", src, input="a changed\n").returncode == 0
    assert run("postmap", "-q", "a", src).stdout == "changed\n"


def test_fold_case_off_with_f(run, tmp_path):
    src = write(tmp_path / "map", "MixedKey value\n")
    assert run("postmap", "-f", src).returncode == 0
    assert run("postmap", "-q", "MixedKey", src).returncode == 1  # the query is folded, the key was not
    r = run("postmap", "-f", "-q", "MixedKey", src)
    assert (r.returncode, r.stdout) == (0, "value\n")
    assert run("postmap", "-f", "-q", "mixedkey", src).returncode == 1
    assert run("postmap", "-s", src).stdout == "MixedKey\tvalue\n"
    assert run("postmap", src).returncode == 0
    assert run("postmap", "-q", "MIXEDKEY", src).stdout == "value\n"


def test_duplicates_warn_replace_or_quiet(run, tmp_path):
    src = write(tmp_path / "map", "a first\nb x\nA second\n")
    r = run("postmap", src)
    assert r.returncode == 0
    assert r.stderr == f'postmap: warning: {src}:3: duplicate entry: "a"\n'
    assert run("postmap", "-q", "a", src).stdout == "first\n"
    r = run("postmap", "-r", src)
    assert (r.returncode, r.stderr) == (0, "")
    assert run("postmap", "-q", "a", src).stdout == "second\n"
    r = run("postmap", "-w", src)
    assert (r.returncode, r.stderr) == (0, "")
    assert run("postmap", "-q", "a", src).stdout == "first\n"


@pytest.mark.parametrize("text, line, what", [
    ("a 1\nlonely\n", 2, "expected format: key whitespace value"),
    ("  a 1\n", 1, "continuation line with nothing to continue"),
    ("a 1\n\"open key 2\n", 2, "missing closing double quote"),
])
def test_bad_source_leaves_old_table(run, tmp_path, text, line, what):
    src = write(tmp_path / "map", "a old\n")
    assert run("postmap", src).returncode == 0
    write(src, text)
    r = run("postmap", src)
    assert r.returncode != 0
    assert f"postmap: fatal: {src}:{line}: {what}" in r.stderr
    assert run("postmap", "-q", "a", src).stdout == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "etc") == ["map", "map.db"]


def test_every_table_type_answers_the_same(run, tmp_path):
    data = {"alice@example.com": "alice", "bob": "bob@elsewhere.org", "postmaster": "root"}
    text = "".join(f"{k} {v}\n" for k, v in data.items())
    write(tmp_path / "h", text)
    write(tmp_path / "b", text)
    write(tmp_path / "t", text)
    assert run("postmap", f"hash:{tmp_path}/h").returncode == 0
    assert run("postmap", f"btree:{tmp_path}/b").returncode == 0
    inline = "inline:{" + ", ".join(f"{k}={v}" for k, v in data.items()) + "}"
    specs = [f"hash:{tmp_path}/h", f"btree:{tmp_path}/b", f"texthash:{tmp_path}/t", inline]
    for key in list(data) + ["Alice@EXAMPLE.com", "nobody"]:
        answers = [(r.returncode, r.stdout) for r in (run("postmap", "-q", key, s) for s in specs)]
        expected = data.get(key.lower())
        assert answers == [(0, expected + "\n") if expected else (1, "")] * 4, key
    for spec in specs:
        r = run("postmap", "-s", spec)
        assert sorted(r.stdout.splitlines()) == sorted(f"{k}\t{v}" for k, v in data.items()), spec
    # The first table that knows a key answers.
    r = run("postmap", "-q", "bob", "inline:{bob=first}", f"hash:{tmp_path}/h")
    assert r.stdout == "first\n"


def test_default_database_type_and_regexp_query(run, tmp_path):
    run.write_main_cf("default_database_type = btree\n")
    src = write(tmp_path / "map", "k v\n")
    assert run("postmap", src).returncode == 0
    assert run("postmap", "-q", "k", f"btree:{src}").stdout == "v\n"
    r = run("postmap", "-q", "k", f"hash:{src}")
    assert r.returncode != 0 and "cannot open table" in r.stderr
    re = write(tmp_path / "re", "/^(.+)@example\\.com$/ $1\n")
    r = run("postmap", "-q", "Joe@example.com", f"regexp:{re}")
    assert (r.returncode, r.stdout) == (0, "Joe\n")


@pytest.mark.skipif(not shutil.which("db_dump"), reason="db_dump (db-util) is not installed")
def test_db_dump_reads_our_files_with_trailing_nul(run, tmp_path):
    src = write(tmp_path / "map", "key value\n")
    assert run("postmap", src).returncode == 0
    out = subprocess.run(["db_dump", "-p", str(tmp_path / "map.db")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "type=hash" in out.stdout
    assert " key\\00\n value\\00\n" in out.stdout
    assert run("postmap", "-n", f"btree:{src}").returncode == 0
    out = subprocess.run(["db_dump", "-p", str(tmp_path / "map.db")], capture_output=True, text=True)
    assert "type=btree" in out.stdout
    assert " key\n value\n" in out.stdout


def test_temporary_failure_exits_75(run, tmp_path):
    cf = write(tmp_path / "down.cf", "hosts = inet:127.0.0.1:1\nquery = SELECT '%s'\nconnect_timeout = 2\n", 0o600)
    r = run("postmap", "-q", "key", f"mysql:{cf}")
    assert r.returncode == 75
    assert r.stdout == ""
    assert 'postmap: fatal: temporary failure looking up "key": ' in r.stderr
    r = run("postmap", "-q", "-", f"mysql:{cf}", "inline:{key=value}", input="key\n")
    assert r.returncode == 1
    assert 'postmap: warning: temporary failure looking up "key"' in r.stderr


@pytest.mark.parametrize("args, message", [
    ([], "no table named"),
    (["-q"], "option -q needs an argument"),
    (["-z", "x"], "unknown option -z"),
    (["-q", "k", "-s", "x"], "-q, -d, -s and -i exclude each other"),
    (["-r", "-w", "x"], "-r and -w exclude each other"),
    (["-i", "a", "b"], "name one table"),
])
def test_bad_usage(run, args, message):
    r = run("postmap", *args)
    assert r.returncode == 64
    assert "usage: postmap" in r.stderr
    assert message in r.stderr


def test_what_cannot_be_built_or_listed(run, tmp_path):
    src = write(tmp_path / "map", "k v\n")
    r = run("postmap", f"texthash:{src}")
    assert r.returncode != 0
    assert "only hash: and btree: tables can be built or changed" in r.stderr
    r = run("postmap", "-s", "static:x")
    assert r.returncode == 64
    assert "static tables cannot be listed" in r.stderr
    r = run("postmap", f"{tmp_path}/missing")
    assert r.returncode != 0
    assert f"open {tmp_path}/missing: No such file or directory" in r.stderr
    r = run("postmap", "-q", "k", "nosuchtype:x")
    assert r.returncode != 0 and "unsupported table type: nosuchtype" in r.stderr
