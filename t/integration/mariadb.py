"""A real MariaDB server for tests: its own data directory under /tmp, a UNIX socket,
networking off, every step bounded by a timeout, and always stopped at the end.

    from mariadb import mariadb_server        # a module-scoped pytest fixture

    def test_x(mariadb_server):
        db = mariadb_server
        db.sql("CREATE TABLE t (k VARCHAR(64))", database=db.database)
        db.stop()    # "the server is down" (the data directory stays)
        db.start()   # "the server is back", same data

The fixture creates one database with one user and password (db.database, db.user,
db.password) and connects over db.socket. Works as root (the server then runs with
--user=root, as CI does) and as an ordinary user.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

INSTALL_DB = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
SERVER = shutil.which("mariadbd", path="/usr/sbin:/usr/local/sbin:" + os.environ.get("PATH", "")) \
    or shutil.which("mysqld", path="/usr/sbin:/usr/local/sbin:" + os.environ.get("PATH", ""))
CLIENT = shutil.which("mariadb") or shutil.which("mysql")

# Small InnoDB files keep install and start fast; both must get the same values.
SERVER_OPTIONS = ["--innodb-log-file-size=4M", "--innodb-buffer-pool-size=16M",
                  "--skip-name-resolve", "--character-set-server=utf8mb4"]


class MariaDBError(RuntimeError):
    pass


# Kills the server when the test process is gone without cleaning up (SIGKILL, or
# SIGTERM from a CI timeout, which skips fixture finalizers); ends by itself when
# the server stops.
WATCHDOG = ('while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 1; done; '
            'kill -9 "$2" 2>/dev/null')


class MariaDB:
    """One server instance in a private directory. The socket path must stay short
    (UNIX socket paths are limited to 107 bytes), so the directory is made by mkdtemp
    under /tmp rather than under pytest's deeper tmp_path."""

    def __init__(self, database="postern", user="postern", password="s3cret pass'word"):
        self.dir = tempfile.mkdtemp(prefix="postern-mariadb-", dir="/tmp")
        self.datadir = os.path.join(self.dir, "data")
        self.socket = os.path.join(self.dir, "mysqld.sock")
        self.pid_file = os.path.join(self.dir, "mysqld.pid")
        self.log_file = os.path.join(self.dir, "error.log")
        self.database = database
        self.user = user
        self.password = password
        self.proc = None
        self._as_root = os.geteuid() == 0

    # -- life cycle -------------------------------------------------------------

    def install(self, timeout=60):
        for what, path in (("mariadb-install-db", INSTALL_DB), ("mariadbd", SERVER), ("mariadb", CLIENT)):
            if not path:
                raise MariaDBError(f"{what} not found: install mariadb-server and mariadb-client "
                                   "(tools/install-deps)")
        args = [INSTALL_DB, "--no-defaults", f"--datadir={self.datadir}",
                "--auth-root-authentication-method=normal", "--skip-test-db"] + SERVER_OPTIONS
        if self._as_root:
            args.append("--user=root")
        # A session of its own, so that a timeout can kill the script and the bootstrap
        # server it starts together.
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, cwd=self.dir,
                                start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise MariaDBError(f"mariadb-install-db did not finish within {timeout}s")
        if proc.returncode != 0:
            raise MariaDBError(f"mariadb-install-db failed ({proc.returncode}):\n{output}")

    def start(self, timeout=30):
        """Starts the server on the existing data directory; returns when the socket
        answers a query. Raises MariaDBError (with the server's log) otherwise."""
        if self.running():
            return
        args = [SERVER, "--no-defaults", f"--datadir={self.datadir}", f"--socket={self.socket}",
                "--skip-networking", f"--pid-file={self.pid_file}",
                f"--log-error={self.log_file}"] + SERVER_OPTIONS
        if self._as_root:
            args.append("--user=root")
        log_start = os.path.getsize(self.log_file) if os.path.exists(self.log_file) else 0
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, cwd=self.dir)
        subprocess.Popen(["/bin/sh", "-c", WATCHDOG, "mariadb-watchdog", str(os.getpid()), str(self.proc.pid)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                raise MariaDBError(f"mariadbd exited during start-up:\n{self._log_since(log_start)}")
            if self._socket_accepts() and self._client(["-e", "SELECT 1"], timeout=5).returncode == 0:
                return
            time.sleep(0.05)
        self.kill()
        raise MariaDBError(f"mariadbd did not answer within {timeout}s:\n{self._log_since(log_start)}")

    def stop(self, timeout=30):
        """Shuts the server down cleanly (SIGTERM), killing it if it takes too long.
        Returns only when the process is gone and the socket no longer accepts."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self):
        try:
            self.stop(timeout=15)
        finally:
            self.kill()
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- SQL --------------------------------------------------------------------

    def sql(self, statements, database=None, user="root", password=None, timeout=30):
        """Runs SQL through the mariadb client over the socket; returns its output
        (tab-separated rows, no column names). Raises MariaDBError on failure."""
        args = ["--batch", "--skip-column-names"]
        if database:
            args.append(f"--database={database}")
        r = self._client(args, user=user, password=password, input=statements, timeout=timeout)
        if r.returncode != 0:
            raise MariaDBError(f"SQL failed ({r.returncode}): {r.stderr.strip()}\n{statements}")
        return r.stdout

    def create_database_and_user(self):
        esc = self.password.replace("\\", "\\\\").replace("'", "\\'")
        self.sql(f"CREATE DATABASE IF NOT EXISTS `{self.database}` CHARACTER SET utf8mb4;\n"
                 f"CREATE USER IF NOT EXISTS '{self.user}'@'localhost' IDENTIFIED BY '{esc}';\n"
                 f"GRANT SELECT ON `{self.database}`.* TO '{self.user}'@'localhost';\n"
                 "FLUSH PRIVILEGES;\n")

    # -- internals --------------------------------------------------------------

    def _client(self, args, user="root", password=None, input=None, timeout=30):
        full = [CLIENT, "--no-defaults", f"--socket={self.socket}", "--protocol=socket",
                f"--user={user}", "--connect-timeout=5"] + args
        env = dict(os.environ)
        env.pop("MYSQL_PWD", None)
        if password is not None:
            env["MYSQL_PWD"] = password  # keeps the password off the command line
        return subprocess.run(full, input=input, capture_output=True, text=True, timeout=timeout,
                              env=env)

    def _socket_accepts(self):
        if not os.path.exists(self.socket):
            return False
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(1)
        try:
            s.connect(self.socket)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def _log_since(self, offset):
        try:
            with open(self.log_file, errors="replace") as f:
                f.seek(offset)
                return f.read()[-4000:]
        except OSError:
            return "(no server log)"


@pytest.fixture(scope="module")
def mariadb_server():
    """A running server with db.database, db.user and db.password ready; started once
    per test module, stopped and removed when the module's tests are done."""
    db = MariaDB()
    try:
        db.install()
        db.start()
        db.create_database_and_user()
        yield db
    finally:
        db.cleanup()
