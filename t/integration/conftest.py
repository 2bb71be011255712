"""Shared fixtures for integration tests: where the built programs are, a fresh
configuration directory per test, and a helper that runs a Postern program the way
a user would (real processes, real files)."""
import os
import subprocess
import time

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(TOP, os.environ.get("BUILD", "build"))
BIN = os.path.join(BUILD, "bin")


def program(name):
    return os.path.join(BIN, name)


def wait_for(predicate, timeout=10.0):
    """Polls predicate until it is true or timeout seconds pass; returns its last answer."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


class Runner:
    """Runs Postern programs against one configuration directory."""

    def __init__(self, confdir):
        self.confdir = str(confdir)

    def __call__(self, prog, *args, input=None, env=None, timeout=60):
        full_env = dict(os.environ, POSTERN_CONFIG_DIR=self.confdir)
        if env:
            full_env.update(env)
        return subprocess.run([program(prog)] + [str(a) for a in args], input=input,
                              capture_output=True, text=True, env=full_env, timeout=timeout)

    def write_main_cf(self, text):
        with open(os.path.join(self.confdir, "main.cf"), "w") as f:
            f.write(text)


@pytest.fixture
def confdir(tmp_path):
    d = tmp_path / "etc"
    d.mkdir()
    (d / "main.cf").write_text("")
    return d


@pytest.fixture
def run(confdir):
    return Runner(confdir)
