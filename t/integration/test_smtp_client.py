"""The smtp client under master with real processes: sendmail -> pickup -> cleanup
-> qmgr -> smtp -> a scripted SMTP server on a loopback address (smtp_server.py),
with MX records from a DNS server on loopback (dns_server.py) and every MX host on
the same port (smtp_tcp_port).  Covered: relayhost, MX preference and fail-over,
all MX hosts down then up, NXDOMAIN, null MX and DNS failure, remote 5xx quoted in
the bounce log, partial acceptance retried only for the rest, dropped and stalled
connections, STARTTLS required but missing, certificate checks, and a cached
connection reused for the next message."""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import wait_for
from instance import MailInstance
from smtp_server import SmtpServer

HERE = os.path.dirname(os.path.abspath(__file__))

MASTER_CF = ("pickup unix n - n 1 1 pickup\n"
             "cleanup unix n - n - 0 cleanup\n"
             "qmgr unix n - n 1 1 qmgr\n"
             "smtp unix - - n - - smtp\n"
             "relay unix - - n - - smtp\n")


class Dns:
    """dns_server.py with a zone; resolv_conf is the file for dns_resolver_conf."""

    def __init__(self, base, zone):
        path = os.path.join(base, "zone.json")
        with open(path, "w") as f:
            json.dump(zone, f)
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "dns_server.py"), path],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        port = int(self.proc.stdout.readline())
        self.resolv_conf = os.path.join(base, "resolv.conf")
        with open(self.resolv_conf, "w") as f:
            f.write("nameserver 127.0.0.1\nport %d\noptions timeout:1 attempts:1\n" % port)
        os.chmod(base, 0o755)

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=5)


class Site:
    """A Postern instance whose smtp client talks to test servers on port `port`."""

    def __init__(self, port, zone=None, main_cf_extra=""):
        self.inst = MailInstance("postern-smtp-", ["pickup", "cleanup", "qmgr", "smtp"], MASTER_CF)
        self.dns = Dns(self.inst.base, zone or {})
        self.inst.main_cf += ("mydestination = $myhostname\ninet_interfaces = 127.0.0.1\n"
                              "dns_resolver_conf = %s\nsmtp_tcp_port = %d\n"
                              "minimal_backoff_time = 1s\nmaximal_backoff_time = 2s\nqueue_run_delay = 1s\n"
                              "smtp_connect_timeout = 3s\nsmtp_helo_timeout = 3s\n"
                              % (self.dns.resolv_conf, port)) + main_cf_extra
        with open(os.path.join(self.inst.confdir, "main.cf"), "w") as f:
            f.write(self.inst.main_cf)
        self.inst.start()

    def send(self, *recipients, body="Subject: test\n\nhello\n.dot line\n"):
        self.inst.sendmail("-f", "sender@mail.example.com", *recipients, input=body)

    def queued(self):
        return sum(len(self.inst.queue(q)) for q in ("incoming", "active", "deferred", "maildrop"))

    def bounce_logs(self):
        folder = os.path.join(self.inst.spool, "bounce")
        if not os.path.isdir(folder):
            return ""
        text = ""
        for name in os.listdir(folder):
            with open(os.path.join(folder, name)) as f:
                text += f.read()
        return text

    def defer_logs(self):
        folder = os.path.join(self.inst.spool, "defer")
        if not os.path.isdir(folder):
            return ""
        text = ""
        for name in os.listdir(folder):
            with open(os.path.join(folder, name)) as f:
                text += f.read()
        return text

    def stop(self):
        self.inst.stop()
        self.dns.stop()


@pytest.fixture
def servers():
    """Starts SmtpServers on 127.0.0.N, all on the first one's port; closes them after."""
    made = []

    def make(address, **kwargs):
        """address: the last octet of 127.0.0.N, or an IPv6 address."""
        kwargs.setdefault("port", made[0].port if made else 0)
        s = SmtpServer(host=address if isinstance(address, str) else "127.0.0.%d" % address, **kwargs)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


@pytest.fixture
def sites():
    made = []

    def make(*args, **kwargs):
        s = Site(*args, **kwargs)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


def free_port():
    s = SmtpServer(host="127.0.0.2")
    port = s.port
    s.close()
    return port


MX_ZONE = {
    "example.net": {"MX": [[10, "mx1.example.net"], [20, "mx2.example.net"]]},
    "mx1.example.net": {"A": ["127.0.0.2"]},
    "mx2.example.net": {"A": ["127.0.0.3"]},
}


def test_relayhost_delivers_with_pipelining_size_and_dot_stuffing(servers, sites):
    mx = servers(2)
    site = sites(mx.port, main_cf_extra="relayhost = [127.0.0.2]\n")
    site.send("bob@example.net", "carol@example.org")
    assert wait_for(lambda: mx.messages and site.queued() == 0, 20), site.inst.log()
    [(mail, rcpts, data)] = mx.messages
    assert mail.startswith("MAIL FROM:<sender@mail.example.com> SIZE=")
    assert sorted(rcpts) == ["RCPT TO:<bob@example.net>", "RCPT TO:<carol@example.org>"]
    assert b"\r\n..dot line\r\n" in data
    # PIPELINING: MAIL, both RCPTs and DATA arrived before any reply was read;
    # we can only see the order here, and the log says sent for both.
    log = site.inst.log()
    assert "to=<bob@example.net>, relay=127.0.0.2[127.0.0.2]:%d" % mx.port in log
    assert log.count("status=sent (250 2.0.0 Ok: queued)") == 2


def test_mx_preference_and_failover_to_the_next_host(servers, sites):
    port = free_port()
    mx2 = servers(3, port=port, name="mx2.example.net")  # mx1 (127.0.0.2) does not listen
    site = sites(port, zone=MX_ZONE)
    site.send("bob@example.net")
    assert wait_for(lambda: mx2.messages and site.queued() == 0, 20), site.inst.log()
    log = site.inst.log()
    assert "connect to mx1.example.net[127.0.0.2]:%d: Connection refused" % port in log
    assert "relay=mx2.example.net[127.0.0.3]:%d" % port in log


def test_4xx_greeting_moves_on_to_the_next_mx(servers, sites):
    mx1 = servers(2, name="mx1.example.net", greeting="421 4.3.2 busy, go away")
    mx2 = servers(3, name="mx2.example.net")
    site = sites(mx1.port, zone=MX_ZONE)
    site.send("bob@example.net")
    assert wait_for(lambda: mx2.messages and site.queued() == 0, 20), site.inst.log()
    assert mx1.connections >= 1 and not mx1.messages
    assert "host mx1.example.net[127.0.0.2] refused to talk to me: 421 4.3.2 busy, go away" in site.inst.log()


def test_preferred_mx_is_tried_first(servers, sites):
    mx1 = servers(2, name="mx1.example.net")
    mx2 = servers(3, name="mx2.example.net")
    site = sites(mx1.port, zone=MX_ZONE)
    for _ in range(3):
        site.send("bob@example.net")
    assert wait_for(lambda: len(mx1.messages) == 3 and site.queued() == 0, 20), site.inst.log()
    assert mx2.connections == 0


def test_all_mx_down_defers_then_delivers_when_one_comes_up(servers, sites):
    port = free_port()
    site = sites(port, zone=MX_ZONE)
    site.send("bob@example.net")
    assert wait_for(lambda: site.inst.queue("deferred") and "Connection refused" in site.defer_logs(), 20), \
        site.inst.log()
    assert "status=deferred" in site.inst.log()
    mx2 = servers(3, port=port, name="mx2.example.net")
    assert wait_for(lambda: mx2.messages and site.queued() == 0, 30), site.inst.log()
    assert len(mx2.messages) == 1


def test_5xx_bounce_quotes_the_remote_text_and_partial_acceptance_retries_only_the_rest(servers, sites):
    answers = {"bob@example.net": "550 5.1.1 <bob@example.net>: user unknown",
               "carol@example.net": "450 4.2.0 <carol@example.net>: mailbox busy"}
    mx1 = servers(2, name="mx1.example.net", rcpt=lambda a: answers.get(a, "250 2.1.5 Ok"))
    site = sites(mx1.port, zone={"example.net": {"MX": [[10, "mx1.example.net"]]},
                                 "mx1.example.net": {"A": ["127.0.0.2"]}})
    site.send("alice@example.net", "bob@example.net", "carol@example.net")
    expected = ("host mx1.example.net[127.0.0.2] said: 550 5.1.1 <bob@example.net>: user unknown "
                "(in reply to RCPT TO command)")
    assert wait_for(lambda: expected in site.bounce_logs(), 20), site.inst.log()
    assert "status=5.1.1" in site.bounce_logs()
    assert wait_for(lambda: "mailbox busy" in site.defer_logs(), 10), site.inst.log()
    assert len(mx1.messages) == 1 and mx1.messages[0][1] == ["RCPT TO:<alice@example.net>"]
    # carol is retried alone; alice is not sent again, bob not at all.
    answers["carol@example.net"] = "250 2.1.5 Ok"
    assert wait_for(lambda: len(mx1.messages) == 2, 20), site.inst.log()
    time.sleep(2)
    assert [m[1] for m in mx1.messages] == [["RCPT TO:<alice@example.net>"], ["RCPT TO:<carol@example.net>"]]
    assert not any("bob@" in c for c in mx1.commands[mx1.commands.index("RCPT TO:<alice@example.net>") + 3:])


def test_5xx_to_mail_from_bounces_every_recipient(servers, sites):
    mx = servers(2, mail_reply="553 5.7.1 sender refused")
    site = sites(mx.port, main_cf_extra="relayhost = [127.0.0.2]\n")
    site.send("bob@example.net", "carol@example.net")
    assert wait_for(lambda: site.bounce_logs().count("(in reply to MAIL FROM command)") == 2, 20), site.inst.log()
    assert "553 5.7.1 sender refused" in site.bounce_logs()


def test_nxdomain_and_null_mx_bounce_dns_failure_defers(servers, sites):
    port = free_port()
    site = sites(port, zone={"nullmx.example": {"MX": [[0, "."]]}, "broken.example": {"rcode": "SERVFAIL"}})
    site.send("a@nosuch.example", "b@nullmx.example", "c@broken.example")
    assert wait_for(lambda: "nullMX" in site.bounce_logs() and "Host not found" in site.bounce_logs(), 20), \
        site.inst.log()
    assert "status=5.1.10" in site.bounce_logs()
    assert "name=nosuch.example type=A: Host not found" in site.bounce_logs()
    assert wait_for(lambda: "try again" in site.defer_logs(), 10), site.inst.log()
    assert "c@broken.example" not in site.bounce_logs()


def test_mail_that_loops_back_to_ourselves_bounces(servers, sites):
    port = free_port()
    site = sites(port, zone={"loop.example": {"MX": [[10, "self.loop.example"]]},
                             "self.loop.example": {"A": ["127.0.0.1"]}})  # inet_interfaces = 127.0.0.1
    site.send("a@loop.example")
    assert wait_for(lambda: "mail for loop.example loops back to myself" in site.bounce_logs(), 20), \
        site.inst.log()


def test_server_greeting_with_our_own_name_is_a_loop(servers, sites):
    mx = servers(2, name="mail.example.com")  # the instance's myhostname
    site = sites(mx.port, main_cf_extra="relayhost = [127.0.0.2]\n")
    site.send("a@example.net")
    assert wait_for(lambda: "loops back to myself" in site.bounce_logs(), 20), site.inst.log()
    assert not mx.messages


def test_dropped_connection_and_stalled_server_defer(servers, sites):
    mx = servers(2, drop_at="RCPT")
    site = sites(mx.port, main_cf_extra="relayhost = [127.0.0.2]\n")
    site.send("a@example.net")
    assert wait_for(lambda: "lost connection with 127.0.0.2[127.0.0.2] while" in site.defer_logs(), 20), \
        site.inst.log()
    assert not mx.messages

    slow = servers(3, stall=30)
    site2 = sites(slow.port, main_cf_extra="relayhost = [127.0.0.3]\n")
    site2.send("a@example.net")
    assert wait_for(lambda: "timed out while receiving the initial server greeting" in site2.defer_logs(), 20), \
        site2.inst.log()


def test_server_without_esmtp_gets_helo(servers, sites):
    mx = servers(2, extensions=[])
    mx.greeting = "220 old.example.test SMTP"
    original = mx.rcpt
    site = sites(mx.port, main_cf_extra="relayhost = [127.0.0.2]\n")
    site.send("a@example.net")
    assert wait_for(lambda: mx.messages and site.queued() == 0, 20), site.inst.log()
    assert mx.messages[0][0] == "MAIL FROM:<sender@mail.example.com>"  # no SIZE: not announced
    assert original is mx.rcpt


def test_connection_is_reused_for_the_next_message(servers, sites):
    mx = servers(2)
    site = sites(mx.port, main_cf_extra="relayhost = [127.0.0.2]\nsmtp_connection_cache_time_limit = 30s\n")
    site.send("a@example.net")
    assert wait_for(lambda: len(mx.messages) == 1 and site.queued() == 0, 20), site.inst.log()
    site.send("b@example.net")
    assert wait_for(lambda: len(mx.messages) == 2 and site.queued() == 0, 20), site.inst.log()
    assert mx.connections == 1, site.inst.log()
    assert "reusing the session to 127.0.0.2[127.0.0.2]" in site.inst.log()
    assert "RSET" in mx.commands


def test_without_connection_cache_each_message_connects(servers, sites):
    mx = servers(2)
    site = sites(mx.port, main_cf_extra="relayhost = [127.0.0.2]\nsmtp_connection_cache_time_limit = 0\n")
    site.send("a@example.net")
    assert wait_for(lambda: len(mx.messages) == 1 and site.queued() == 0, 20), site.inst.log()
    site.send("b@example.net")
    assert wait_for(lambda: len(mx.messages) == 2 and site.queued() == 0, 20), site.inst.log()
    assert mx.connections == 2


@pytest.fixture
def certs():
    """A self-signed certificate for mx1.example.net and one for another name, in a
    folder the smtp client (mail_owner) can read."""
    folder = tempfile.mkdtemp(prefix="postern-certs-")
    os.chmod(folder, 0o755)
    made = {}
    for name in ("mx1.example.net", "other.example.org"):
        cert, key = os.path.join(folder, name + ".crt"), os.path.join(folder, name + ".key")
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                            "-subj", "/CN=" + name, "-addext", "subjectAltName=DNS:" + name,
                            "-keyout", key, "-out", cert], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        os.chmod(key, 0o644)
        made[name] = (cert, key)
    yield made
    shutil.rmtree(folder, ignore_errors=True)


ONE_MX = {"example.net": {"MX": [[10, "mx1.example.net"]]}, "mx1.example.net": {"A": ["127.0.0.2"]}}


def test_tls_required_but_not_offered_defers(servers, sites):
    mx = servers(2, name="mx1.example.net")
    site = sites(mx.port, zone=ONE_MX, main_cf_extra="smtp_tls_security_level = encrypt\n")
    site.send("a@example.net")
    assert wait_for(lambda: "TLS is required, but was not offered by host mx1.example.net[127.0.0.2]"
                    in site.defer_logs(), 20), site.inst.log()
    assert not mx.messages


def test_tls_verify_delivers_with_a_matching_certificate(servers, sites, certs):
    mx = servers(2, name="mx1.example.net", tls_cert=certs["mx1.example.net"])
    site = sites(mx.port, zone=ONE_MX, main_cf_extra="smtp_tls_security_level = verify\nsmtp_tls_CAfile = %s\n"
                 % certs["mx1.example.net"][0])
    site.send("a@example.net")
    assert wait_for(lambda: mx.messages and site.queued() == 0, 20), site.inst.log()
    assert "Verified TLS connection established to mx1.example.net[127.0.0.2]" in site.inst.log()
    assert "STARTTLS" in mx.commands and mx.commands.count("EHLO mail.example.com") == 2


def test_tls_verify_refuses_a_certificate_for_another_name(servers, sites, certs):
    mx = servers(2, name="mx1.example.net", tls_cert=certs["other.example.org"])
    site = sites(mx.port, zone=ONE_MX, main_cf_extra="smtp_tls_security_level = verify\nsmtp_tls_CAfile = %s\n"
                 % certs["other.example.org"][0])
    site.send("a@example.net")
    assert wait_for(lambda: "TLS handshake with mx1.example.net[127.0.0.2] failed" in site.defer_logs(), 20), \
        site.inst.log()
    assert not mx.messages


def test_opportunistic_tls_is_used_when_offered(servers, sites, certs):
    mx = servers(2, name="mx1.example.net", tls_cert=certs["other.example.org"])
    site = sites(mx.port, zone=ONE_MX, main_cf_extra="smtp_tls_security_level = may\n")
    site.send("a@example.net")
    assert wait_for(lambda: mx.messages and site.queued() == 0, 20), site.inst.log()
    assert "TLS connection established to mx1.example.net[127.0.0.2]" in site.inst.log()


def test_verify_without_a_ca_file_refuses_to_start(servers, sites):
    port = free_port()
    site = sites(port, main_cf_extra="smtp_tls_security_level = verify\nrelayhost = [127.0.0.2]\n")
    site.send("a@example.net")
    assert wait_for(lambda: "needs smtp_tls_CAfile or smtp_tls_CApath" in site.inst.log(), 20), site.inst.log()
    time.sleep(1)
    assert site.queued() == 1  # kept, not bounced


def test_backup_mx_only_passes_mail_to_better_hosts(servers, sites):
    port = free_port()
    zone = {"backup.example": {"MX": [[10, "primary.backup.example"], [20, "us.backup.example"],
                                      [30, "worse.backup.example"]]},
            "primary.backup.example": {"A": ["127.0.0.2"]},
            "us.backup.example": {"A": ["127.0.0.1"]},  # inet_interfaces: ourselves
            "worse.backup.example": {"A": ["127.0.0.3"]}}
    worse = servers(3, port=port, name="worse.backup.example")
    site = sites(port, zone=zone, main_cf_extra="relay_domains = backup.example\n")
    site.send("a@backup.example")
    assert wait_for(lambda: "connect to primary.backup.example[127.0.0.2]" in site.defer_logs(), 20), \
        site.inst.log()
    assert "loops back" not in site.inst.log()
    primary = servers(2, port=port, name="primary.backup.example")
    assert wait_for(lambda: primary.messages and site.queued() == 0, 30), site.inst.log()
    assert worse.connections == 0


def test_transport_maps_nexthop_with_a_port(servers, sites):
    mx = servers(2)
    site = sites(1, main_cf_extra="transport_maps = inline:{{example.org = smtp:[127.0.0.2]:%d}}\n" % mx.port)
    site.send("a@example.org")
    assert wait_for(lambda: mx.messages and site.queued() == 0, 20), site.inst.log()


def test_sasl_authenticates_to_the_relayhost(servers, sites):
    token = base64.b64encode(b"\0relayuser\0s3cret").decode()
    mx = servers(2, auth="AUTH PLAIN " + token)
    site = sites(mx.port, main_cf_extra="relayhost = [127.0.0.2]\nsmtp_sasl_auth_enable = yes\n"
                 "smtp_sasl_password_maps = inline:{{[127.0.0.2]:%d = relayuser:s3cret}}\n" % mx.port)
    site.send("a@example.net")
    assert wait_for(lambda: mx.messages and site.queued() == 0, 20), site.inst.log()
    assert "AUTH PLAIN " + token in mx.commands


def test_sasl_refused_defers(servers, sites):
    mx = servers(2, auth="AUTH PLAIN nothing-matches")
    site = sites(mx.port, main_cf_extra="relayhost = [127.0.0.2]\nsmtp_sasl_auth_enable = yes\n"
                 "smtp_sasl_password_maps = inline:{{[127.0.0.2]:%d = relayuser:wrong}}\n" % mx.port)
    site.send("a@example.net")
    assert wait_for(lambda: "SASL authentication failed; server 127.0.0.2[127.0.0.2] said: 535" in
                    site.defer_logs(), 20), site.inst.log()
    assert not mx.messages


def test_5xx_at_end_of_data_bounces_the_accepted_recipients(servers, sites):
    mx = servers(2, end_reply="554 5.7.1 message content rejected")
    site = sites(mx.port, main_cf_extra="relayhost = [127.0.0.2]\n")
    site.send("a@example.net", "b@example.net")
    assert wait_for(lambda: site.bounce_logs().count("(in reply to end of DATA command)") == 2, 20), \
        site.inst.log()
    assert "554 5.7.1 message content rejected" in site.bounce_logs()


def test_message_over_the_servers_size_limit_bounces(servers, sites):
    mx = servers(2, extensions=["PIPELINING", "SIZE 100"])
    site = sites(mx.port, main_cf_extra="relayhost = [127.0.0.2]\n")
    site.send("a@example.net", body="Subject: big\n\n" + "x" * 500 + "\n")
    assert wait_for(lambda: "exceeds size limit 100 of server 127.0.0.2[127.0.0.2]" in site.bounce_logs(), 20), \
        site.inst.log()
    assert "status=5.3.4" in site.bounce_logs()
    assert not any(c.startswith("MAIL") for c in mx.commands)


def test_equal_preferences_share_the_load(servers, sites):
    mx1 = servers(2, name="mx1.example.net")
    mx2 = servers(3, name="mx2.example.net")
    zone = {"example.net": {"MX": [[10, "mx1.example.net"], [10, "mx2.example.net"]]},
            "mx1.example.net": {"A": ["127.0.0.2"]}, "mx2.example.net": {"A": ["127.0.0.3"]}}
    site = sites(mx1.port, zone=zone, main_cf_extra="smtp_connection_cache_time_limit = 0\n")
    for i in range(16):
        site.send("u%d@example.net" % i)
    assert wait_for(lambda: len(mx1.messages) + len(mx2.messages) == 16 and site.queued() == 0, 30), \
        site.inst.log()
    assert mx1.messages and mx2.messages  # random order among equals (all on one: p = 2^-15)


def test_ipv6_mx_behind_a_cname_and_implicit_mx(servers, sites):
    v6 = servers("::1", name="v6.example.net")
    zone = {"example.net": {"MX": [[10, "alias.example.net"]]},
            "alias.example.net": {"CNAME": "v6.example.net"},
            "v6.example.net": {"AAAA": ["::1"]},
            "nomx.example": {"A": ["127.0.0.9"], "AAAA": ["::1"]}}  # no MX: its own addresses
    site = sites(v6.port, zone=zone)
    site.send("a@example.net", "b@nomx.example")
    assert wait_for(lambda: len(v6.messages) == 2 and site.queued() == 0, 30), site.inst.log()
    assert "relay=v6.example.net[::1]:%d" % v6.port in site.inst.log() or \
        "relay=alias.example.net[::1]:%d" % v6.port in site.inst.log()


@pytest.mark.parametrize("limit", [1, 3])
def test_destination_concurrency_limit(servers, sites, limit):
    mx = servers(2, end_delay=0.5)
    site = sites(mx.port, main_cf_extra="relayhost = [127.0.0.2]\nsmtp_connection_cache_time_limit = 0\n"
                 "smtp_destination_concurrency_limit = %d\n" % limit)
    for i in range(6):
        site.send("u%d@example.net" % i)
    assert wait_for(lambda: len(mx.messages) == 6 and site.queued() == 0, 30), site.inst.log()
    if limit == 1:
        assert mx.max_active == 1
    else:
        assert 1 < mx.max_active <= limit  # shows the test can see more than one at once
