"""mysql: tables against a real MariaDB server, through the real postmap program:
mysql_table(5) %-expansion, result_format, the domain list, escaping of hostile keys,
joined multi-row answers, .cf errors with file and line, and what happens when the
server goes away and comes back (temporary failure, reconnect, fail-over)."""
import os
import queue
import socket
import subprocess
import threading
import time

import pytest

from conftest import program
from mariadb import mariadb_server  # noqa: F401  (a module-scoped fixture)

SCHEMA = """
CREATE TABLE mailbox (
  id INT AUTO_INCREMENT PRIMARY KEY,
  email VARCHAR(255) NOT NULL UNIQUE,
  maildir VARCHAR(255) NOT NULL
) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
INSERT INTO mailbox (email, maildir) VALUES
  ('alice@example.com', 'example.com/alice/'),
  ('bob@example.com', 'example.com/bob/'),
  ('carol@sub.example.org', 'sub.example.org/carol/'),
  ('jörg@example.com', 'example.com/joerg/'),
  ('alice', 'local/alice/');

CREATE TABLE aliases (
  id INT AUTO_INCREMENT PRIMARY KEY,
  source VARCHAR(255) NOT NULL,
  destination VARCHAR(255) NOT NULL,
  extra VARCHAR(255) NULL
) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
INSERT INTO aliases (source, destination, extra) VALUES
  ('postmaster@example.com', 'alice@example.com', NULL),
  ('team@example.com', 'alice@example.com', NULL),
  ('team@example.com', 'bob@example.com', 'bob@backup.example.net'),
  ('team@example.com', 'carol@sub.example.org', NULL),
  ('empty@example.com', '', NULL),
  ('local@example.com', 'justlocal', NULL);

CREATE TABLE domains (
  domain VARCHAR(255) PRIMARY KEY,
  transport VARCHAR(255) NOT NULL
) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
INSERT INTO domains VALUES ('example.com', 'virtual:'), ('example.org', 'relay:[mx.example.org]');

CREATE PROCEDURE mailbox_of(IN k VARCHAR(255)) SELECT maildir FROM mailbox WHERE email = k;
"""

MAILBOX_QUERY = "SELECT maildir FROM mailbox WHERE email = '%s'"


@pytest.fixture(scope="module")
def db(mariadb_server):  # noqa: F811
    mariadb_server.sql(SCHEMA + f"GRANT EXECUTE ON `{mariadb_server.database}`.* TO "
                                f"'{mariadb_server.user}'@'localhost';\n", database=mariadb_server.database)
    return mariadb_server


@pytest.fixture
def cf(db, tmp_path):
    """Writes a .cf file (mode 0600) that reaches the test server; returns its path."""
    count = [0]

    def write(query=MAILBOX_QUERY, hosts=None, mode=0o600, raw=None, **attrs):
        count[0] += 1
        path = tmp_path / f"table{count[0]}.cf"
        if raw is None:
            lines = [f"hosts = {hosts or 'unix:' + db.socket}", f"user = {db.user}",
                     f"password = {db.password}", f"dbname = {db.database}"]
            if query is not None:
                lines.append(f"query = {query}")
            lines += [f"{k} = {v}" for k, v in attrs.items()]
            raw = "\n".join(lines) + "\n"
        path.write_text(raw)
        os.chmod(path, mode)
        return path
    return write


def query(run, table, key):
    """postmap -q KEY mysql:TABLE -> (exit status, stdout without the newline, stderr)."""
    r = run("postmap", "-q", key, f"mysql:{table}", timeout=30)
    return r.returncode, r.stdout.rstrip("\n"), r.stderr


class Session:
    """One long-running `postmap -q - mysql:FILE`: keys go in one by one, answers and
    warnings are read as they come (postmap flushes after each key)."""

    def __init__(self, run, table):
        env = dict(os.environ, POSTERN_CONFIG_DIR=run.confdir)
        self.proc = subprocess.Popen([program("postmap"), "-q", "-", f"mysql:{table}"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1, env=env)
        self.out, self.err, self.stderr_text = queue.Queue(), queue.Queue(), []
        for stream, q in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, q), daemon=True).start()

    @staticmethod
    def _pump(stream, q):
        for line in stream:
            q.put(line.rstrip("\n"))

    def ask(self, key, timeout=15):
        """Sends a key that must be found; returns its value."""
        self.proc.stdin.write(key + "\n")
        self.proc.stdin.flush()
        try:
            line = self.out.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no answer for {key!r}; stderr so far: {self.drain_stderr()}")
        k, _, v = line.partition("\t")
        assert k == key
        return v

    def expect_temp_fail(self, key, timeout=15):
        """Sends a key while the database is unreachable; returns the stderr lines up
        to the temporary-failure warning. Fails if an answer comes instead."""
        self.proc.stdin.write(key + "\n")
        self.proc.stdin.flush()
        seen, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.err.get(timeout=0.1)
            except queue.Empty:
                assert self.out.empty(), f"answered during the outage: {self.out.get()}"
                continue
            self.stderr_text.append(line)
            seen.append(line)
            if "cannot connect to any host" in line:
                time.sleep(0.2)  # an answer would have been printed by now
                assert self.out.empty(), f"answered during the outage: {self.out.get()}"
                return seen
        pytest.fail(f"no temporary failure reported for {key!r}; stderr: {seen}")

    def drain_stderr(self):
        while not self.err.empty():
            self.stderr_text.append(self.err.get())
        return self.stderr_text

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def session(run):
    sessions = []

    def start(table):
        s = Session(run, table)
        sessions.append(s)
        return s
    yield start
    for s in sessions:
        s.close()


@pytest.fixture
def server_down(db):
    """Stops the server; it is started again however the test ends."""
    yield db.stop
    db.start()


# ---- lookups -------------------------------------------------------------------

def test_found_and_not_found(run, cf):
    table = cf()
    assert query(run, table, "alice@example.com") == (0, "example.com/alice/", "")
    assert query(run, table, "bob@example.com") == (0, "example.com/bob/", "")
    assert query(run, table, "ALICE@Example.COM")[:2] == (0, "example.com/alice/")  # keys are folded
    assert query(run, table, "nobody@example.com") == (1, "", "")
    assert query(run, table, "jörg@example.com")[:2] == (0, "example.com/joerg/")  # utf8mb4 connection


def test_user_and_domain_expansion(run, cf):
    table = cf(query="SELECT maildir FROM mailbox WHERE email = CONCAT('%u', '@', '%d')")
    assert query(run, table, "bob@example.com")[:2] == (0, "example.com/bob/")
    # %d needs a domain and %u a local part: such keys are not found, and no query
    # is sent (test_server_down_is_a_temporary_failure shows that).
    assert query(run, table, "alice")[0] == 1
    assert query(run, table, "@example.com")[0] == 1
    assert query(run, table, "alice@")[0] == 1
    # %u of a key without '@' is the whole key (mysql_table(5)).
    table = cf(query="SELECT maildir FROM mailbox WHERE email = '%u'")
    assert query(run, table, "alice")[:2] == (0, "local/alice/")
    assert query(run, table, "alice@anything.test")[:2] == (0, "local/alice/")


def test_domain_label_expansion(run, cf):
    table = cf(query="SELECT transport FROM domains WHERE domain = CONCAT('%2', '.', '%1')")
    assert query(run, table, "user@example.com")[:2] == (0, "virtual:")
    assert query(run, table, "user@mail.example.org")[:2] == (0, "relay:[mx.example.org]")
    assert query(run, table, "user@com")[0] == 1  # too few labels for %2
    assert query(run, table, "user@.com")[0] == 1  # an empty label
    assert query(run, table, "example.com")[0] == 1  # no domain at all
    table = cf(query="SELECT transport FROM domains WHERE domain = '%D' AND '%S' LIKE '%%@%%'")
    assert query(run, table, "x@example.org")[:2] == (0, "relay:[mx.example.org]")


def test_result_format(run, cf):
    table = cf(result_format="maildir:%s/")
    assert query(run, table, "alice@example.com")[:2] == (0, "maildir:example.com/alice//")
    aliases = "SELECT destination FROM aliases WHERE source = '%s' ORDER BY id"
    # lower case letters take the result apart, upper case ones the key.
    table = cf(query=aliases, result_format="%u+%U@%d (100%% for %S)")
    assert query(run, table, "postmaster@example.com")[:2] == \
        (0, "alice+postmaster@example.com (100% for postmaster@example.com)")
    # A result without a domain cannot fill %d: it is skipped, so nothing is found.
    assert query(run, table, "local@example.com")[0] == 1
    table = cf(query=aliases, result_format="%s")
    assert query(run, table, "local@example.com")[:2] == (0, "justlocal")
    assert query(run, table, "empty@example.com")[0] == 1  # an empty value is no answer


def test_stored_procedure_and_statements_without_rows(run, cf, session):
    table = cf(query="CALL mailbox_of('%s')")
    assert query(run, table, "alice@example.com") == (0, "example.com/alice/", "")
    assert query(run, table, "nobody@example.com") == (1, "", "")
    s = session(table)  # a CALL's trailing status must be read before the next query
    assert [s.ask("alice@example.com"), s.ask("bob@example.com")] == ["example.com/alice/", "example.com/bob/"]
    assert s.close() == 0 and s.drain_stderr() == []
    # A statement that returns no result set is a mistake in the query, unless
    # require_result_set = no says it is the way to answer "not found".
    rc, out, err = query(run, cf(query="DO '%s'"), "alice@example.com")
    assert (rc, out) == (75, "")
    assert "no result set" in err
    assert query(run, cf(query="DO '%s'", require_result_set="no"), "alice@example.com") == (1, "", "")


def test_domain_restriction(run, cf, tmp_path):
    plain = cf()
    assert query(run, plain, "alice")[:2] == (0, "local/alice/")
    assert query(run, plain, "carol@sub.example.org")[0] == 0
    listed = tmp_path / "domains"
    listed.write_text("# served here\nexample.com\n")
    for domain in ("example.com, other.test", f"other.test {listed}"):
        table = cf(domain=domain)
        assert query(run, table, "alice@example.com")[:2] == (0, "example.com/alice/")
        assert query(run, table, "alice@EXAMPLE.com")[:2] == (0, "example.com/alice/")
        assert query(run, table, "carol@sub.example.org")[0] == 1  # in the database, domain not listed
        assert query(run, table, "alice")[0] == 1  # keys without a domain are not looked up
        assert query(run, table, "@example.com")[0] == 1


def test_hostile_keys_are_escaped(run, cf, db, session):
    table = cf()
    hostile = ["x' OR '1'='1", "x' OR 1=1 -- ", "\\' OR 1=1 #", "x\\", "alice@example.com' -- ",
               "x'; DROP TABLE mailbox; -- ", "x\" OR \"1\"=\"1", "%' OR email LIKE '%"]
    for key in hostile:
        assert query(run, table, key) == (1, "", ""), key
    # Through %u and %d as well, and in one process whose connection must stay usable.
    split = cf(query="SELECT maildir FROM mailbox WHERE email = CONCAT('%u', '@', '%d')")
    assert query(run, split, "x' OR '1'='1@example.com' OR '1'='1")[0] == 1
    s = session(table)
    for key in hostile:
        s.proc.stdin.write(key + "\n")
    assert s.ask("bob@example.com") == "example.com/bob/"
    assert s.close() == 0
    assert db.sql("SELECT COUNT(*) FROM mailbox", database=db.database).strip() == "5"


def test_rows_and_columns_are_joined(run, cf):
    many = "SELECT destination, extra FROM aliases WHERE source = '%s' ORDER BY id"
    table = cf(query=many)
    assert query(run, table, "team@example.com")[:2] == \
        (0, "alice@example.com, bob@example.com, bob@backup.example.net, carol@sub.example.org")
    assert query(run, table, "postmaster@example.com") == (0, "alice@example.com", "")  # NULL: skipped
    limited = cf(query=many, expansion_limit=3)
    rc, out, err = query(run, limited, "team@example.com")
    assert (rc, out) == (75, "")
    assert "expansion limit" in err
    assert query(run, limited, "postmaster@example.com")[:2] == (0, "alice@example.com")


def test_same_answers_as_inline_table(run, cf, db):
    """The same data in MariaDB and in an inline: table give the same postmap -q answers."""
    def inline_of(sql):
        rows = [line.split("\t") for line in db.sql(sql, database=db.database).splitlines()]
        assert rows
        return "inline:{" + ", ".join(f"{{{k} = {v}}}" for k, v in rows) + "}", [k for k, _ in rows]

    aliases_sql = ("SELECT source, GROUP_CONCAT(destination ORDER BY id SEPARATOR ', ') FROM aliases"
                   " WHERE destination <> '' GROUP BY source")
    for sql, table in (("SELECT email, maildir FROM mailbox", cf()),
                       (aliases_sql, cf(query="SELECT destination FROM aliases WHERE source = '%s' ORDER BY id"))):
        inline, keys = inline_of(sql)
        keys += [k.upper() for k in keys] + ["nobody@example.com", "example.com", "x' OR '1'='1", ""]
        for key in keys:
            r = run("postmap", "-q", key, inline)
            assert r.returncode in (0, 1), r.stderr
            assert query(run, table, key)[:2] == (r.returncode, r.stdout.rstrip("\n")), key


# ---- configuration errors ------------------------------------------------------------

def test_bad_configuration_names_file_and_line(run, cf, db):
    def fails(table, message):
        rc, out, err = query(run, table, "alice@example.com")
        assert rc != 0 and out == ""
        assert message in err, err

    table = cf(query=None)
    fails(table, f"{table}: missing query")
    table = cf(raw=f"# test\nhosts = unix:{db.socket}\nuser {db.user}\nquery = SELECT 1\n")
    fails(table, f"{table}:3: missing '=' after attribute name")
    table = cf(raw=f"hosts = unix:{db.socket}\nquery = SELECT maildir FROM mailbox WHERE email = '%x'\n")
    fails(table, f"{table}:2: invalid %-escape \"%x\" in query")
    table = cf(raw=f"hosts = unix:{db.socket}\nquery = SELECT '%s\n  %\n")
    fails(table, f"{table}:2: '%' at the end of query")
    table = cf(result_format="%s %q")
    fails(table, f"{table}:6: invalid %-escape \"%q\" in result_format")
    table = cf(hosts="inet:db.example:99999")
    fails(table, f"{table}:1: bad port")
    table = cf(expansion_limit="many")
    fails(table, f"{table}:6: invalid expansion_limit")
    # Unknown attributes are reported but do not stop the table; continuation lines join.
    table = cf(raw=f"hosts = unix:{db.socket}\nuser = {db.user}\npassword = {db.password}\n"
                   f"dbname = {db.database}\ncolour = blue\nquery = SELECT maildir FROM mailbox\n"
                   "   WHERE email = '%s'\n")
    rc, out, err = query(run, table, "alice@example.com")
    assert (rc, out) == (0, "example.com/alice/")
    assert f"{table}:5: unknown mysql table attribute \"colour\"" in err


def test_password_in_a_world_readable_file_is_reported(run, cf):
    assert query(run, cf(mode=0o600), "bob@example.com")[2] == ""
    rc, out, err = query(run, cf(mode=0o644), "bob@example.com")
    assert (rc, out) == (0, "example.com/bob/")
    assert "readable by every user" in err


# ---- the server goes away ----------------------------------------------------------

def test_server_down_is_a_temporary_failure(run, cf, server_down):
    table = cf()
    split = cf(query="SELECT maildir FROM mailbox WHERE email = CONCAT('%u', '@', '%d')")
    assert query(run, table, "alice@example.com")[0] == 0
    server_down()
    rc, out, err = query(run, table, "alice@example.com")
    assert (rc, out) == (75, "")
    assert f"mysql:{table}: cannot connect to any host" in err
    assert query(run, table, "nobody@example.com")[0] == 75  # not "not found": we cannot know
    # A key the query cannot use needs no server: still plainly not found.
    assert query(run, split, "no-domain")[:2] == (1, "")


def test_reconnect_after_restart_in_one_process(run, cf, db, session):
    table = cf(query="SELECT CONCAT(maildir, ' ', CONNECTION_ID()) FROM mailbox WHERE email = '%s'",
               retry_interval="1s")
    s = session(table)
    first = s.ask("alice@example.com")
    assert first.startswith("example.com/alice/ ")
    assert s.ask("bob@example.com").split()[1] == first.split()[1]  # the connection is reused
    # The server restarts between two lookups: the dead connection is reopened and
    # the query retried, so the lookup succeeds without a temporary failure.
    db.stop()
    db.start()
    second = s.ask("bob@example.com")
    assert second.split()[0] == "example.com/bob/"
    assert s.ask("alice@example.com").split()[1] == second.split()[1]
    assert not any("cannot connect" in line for line in s.drain_stderr()), s.stderr_text
    # The server is down: a temporary failure for the next key, and the process lives on.
    db.stop()
    try:
        s.expect_temp_fail("carol@sub.example.org")
        s.expect_temp_fail("alice@example.com")
    finally:
        db.start()
    time.sleep(1.1)  # retry_interval
    assert s.ask("carol@sub.example.org").split()[0] == "sub.example.org/carol/"
    assert s.ask("alice@example.com").split()[0] == "example.com/alice/"
    s.close()


def test_failed_host_is_not_retried_within_retry_interval(run, cf, db, session):
    s = session(cf())  # retry_interval defaults to 60s
    assert s.ask("alice@example.com") == "example.com/alice/"
    db.stop()
    try:
        s.expect_temp_fail("bob@example.com")
    finally:
        db.start()
    started = time.monotonic()
    lines = s.expect_temp_fail("bob@example.com")
    assert time.monotonic() - started < 5
    assert any("no host is retried for another" in line for line in lines), lines
    s.close()


def test_failover_to_a_live_host(run, cf, db, tmp_path):
    dead = [f"unix:{tmp_path}/dead1.sock", f"{tmp_path}/dead2.sock", f"unix:{tmp_path}/dead3.sock"]
    # The live socket is listed first, yet hosts are tried in random order (sockets
    # before TCP): over 8 runs some meet a dead socket first (all fail: 1 in 65536).
    table = cf(hosts=f"inet:127.0.0.1:1 unix:{db.socket} {dead[0]}, {dead[1]} {dead[2]}")
    tried_dead = 0
    for _ in range(8):
        rc, out, err = query(run, table, "alice@example.com")
        assert (rc, out) == (0, "example.com/alice/"), err
        assert "127.0.0.1" not in err
        tried_dead += "dead" in err
    assert tried_dead > 0
    all_dead = cf(hosts=" ".join(dead) + " inet:127.0.0.1:1")
    rc, out, err = query(run, all_dead, "alice@example.com")
    assert (rc, out) == (75, "")
    assert "cannot connect to any host" in err
    assert "dead1.sock" in err and "127.0.0.1" in err  # every host was tried


def test_timeouts_bound_a_hung_server(run, cf, tmp_path):
    # A socket that accepts but never greets, as a hung server does: connect_timeout.
    hung = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    hung.bind(str(tmp_path / "hung.sock"))
    hung.listen(8)
    try:
        table = cf(hosts=f"unix:{tmp_path}/hung.sock", connect_timeout="1s")
        started = time.monotonic()
        rc, out, err = query(run, table, "alice@example.com")
        assert (rc, out) == (75, ""), err
        assert time.monotonic() - started < 4
    finally:
        hung.close()
    # A query slower than read_timeout fails temporarily once, without a second try.
    table = cf(query="SELECT maildir FROM mailbox WHERE email = '%s' AND SLEEP(4) = 0", read_timeout="1s")
    started = time.monotonic()
    rc, out, err = query(run, table, "alice@example.com")
    assert (rc, out) == (75, ""), err
    assert time.monotonic() - started < 1.9, err
    assert "Lost connection" in err
