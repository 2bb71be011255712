"""make install / make uninstall into a staging directory, as a packager runs them."""
import os
import subprocess

from conftest import BUILD, TOP


def make(*args):
    return subprocess.run(["make", "--no-print-directory", f"BUILD={os.path.relpath(BUILD, TOP)}"] + list(args),
                          cwd=TOP, capture_output=True, text=True, timeout=600)


def test_install_and_uninstall(tmp_path):
    stage = tmp_path / "stage"
    r = make("install", f"DESTDIR={stage}", "PREFIX=/usr")
    assert r.returncode == 0, r.stderr
    assert os.access(stage / "usr/lib/postern/master", os.X_OK)
    assert (stage / "usr/lib/sendmail").resolve() == (stage / "usr/sbin/sendmail").resolve()
    for prog in ("postconf", "postmap", "postalias", "postern", "postcat", "postsuper", "postqueue", "sendmail"):
        path = stage / "usr/sbin" / prog
        assert os.access(path, os.X_OK), prog
        assert (stage / "usr/share/man/man1" / f"{prog}.1").read_text().startswith(".TH")
    for link, prog in (("newaliases", "postalias"), ("mailq", "postqueue")):
        assert os.readlink(stage / "usr/bin" / link) == f"../sbin/{prog}"
        assert (stage / "usr/bin" / link).resolve() == (stage / "usr/sbin" / prog).resolve()
        assert (stage / "usr/sbin" / link).resolve() == (stage / "usr/sbin" / prog).resolve()
    for conf in ("main.cf", "master.cf", "aliases"):
        assert (stage / "etc/postern" / conf).is_file()
    params = (stage / "usr/share/man/man5/postern-params.5").read_text()
    assert "message_size_limit" in params and "\\-" in params

    # An administrator's edited configuration survives a reinstall and an uninstall.
    (stage / "etc/postern/main.cf").write_text("myhostname = edited.example\n")
    assert make("install", f"DESTDIR={stage}", "PREFIX=/usr").returncode == 0
    assert (stage / "etc/postern/main.cf").read_text() == "myhostname = edited.example\n"

    r = make("uninstall", f"DESTDIR={stage}", "PREFIX=/usr")
    assert r.returncode == 0, r.stderr
    assert not (stage / "usr/sbin/postconf").exists()
    assert not (stage / "usr/lib/postern/master").exists()
    assert not os.path.lexists(stage / "usr/lib/sendmail")
    assert not os.path.lexists(stage / "usr/bin/newaliases")
    assert not os.path.lexists(stage / "usr/sbin/mailq")
    assert not (stage / "usr/share/man/man1/postmap.1").exists()
    assert (stage / "etc/postern/main.cf").read_text() == "myhostname = edited.example\n"
