"""A scriptable SMTP server for the smtp client's tests: listens on a loopback
address in a thread, answers as told (greeting, extensions, per-recipient replies,
4xx/5xx at any step, a dropped connection, a stall, STARTTLS with a given
certificate), and records every connection and transaction it sees."""
import socket
import ssl
import threading


class SmtpServer:
    def __init__(self, host="127.0.0.1", port=0, name="mx.example.test", extensions=None, greeting=None,
                 rcpt=None, mail_reply="250 2.1.0 Ok", data_reply="354 End data with <CR><LF>.<CR><LF>",
                 end_reply="250 2.0.0 Ok: queued", drop_at=None, stall=0, tls_cert=None, auth=None,
                 end_delay=0):
        self.name = name
        self.extensions = ["PIPELINING", "SIZE 10240000", "8BITMIME", "DSN", "SMTPUTF8"] \
            if extensions is None else extensions
        self.greeting = greeting or "220 %s ESMTP test" % name
        self.rcpt = rcpt or (lambda address: "250 2.1.5 Ok")
        self.mail_reply, self.data_reply, self.end_reply = mail_reply, data_reply, end_reply
        self.drop_at, self.stall, self.end_delay = drop_at, stall, end_delay
        self.active = self.max_active = 0  # sessions open at once, and the most seen
        self.auth = auth  # the "AUTH PLAIN <base64>" line to accept; AUTH is offered when set
        if auth:
            self.extensions = self.extensions + ["AUTH PLAIN LOGIN"]
        self.tls = None
        if tls_cert:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(*tls_cert)
            self.extensions = self.extensions + ["STARTTLS"]
        self.connections = 0
        self.messages = []   # (mail line, [rcpt lines], data) of each accepted message
        self.commands = []   # every command line, in order
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.host, self.port = self.sock.getsockname()[:2]
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.stopped = True
        self.sock.close()

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn):
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            self._converse(conn)
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            conn.close()
            with self.lock:
                self.active -= 1

    def _converse(self, conn):
        if self.stall:
            threading.Event().wait(self.stall)
        f = conn.makefile("rb")

        def send(text):
            conn.sendall(text.encode() + b"\r\n")

        if self.drop_at == "greeting":
            return
        send(self.greeting)
        if not self.greeting.startswith("2"):
            return
        mail, rcpts = None, []
        while True:
            raw = f.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self.lock:
                self.commands.append(line)
            verb = line.split(" ")[0].upper()
            if self.drop_at == verb:
                return
            if verb == "EHLO":
                lines = [self.name] + self.extensions
                for ext in lines[:-1]:
                    send("250-" + ext)
                send("250 " + lines[-1])
            elif verb == "HELO":
                send("250 " + self.name)
            elif verb == "STARTTLS" and self.tls:
                send("220 2.0.0 Ready to start TLS")
                conn = self.tls.wrap_socket(conn, server_side=True)
                f = conn.makefile("rb")
            elif verb == "AUTH" and self.auth:
                send("235 2.7.0 Authentication successful" if line == self.auth
                     else "535 5.7.8 Error: authentication failed")
            elif verb == "MAIL":
                send(self.mail_reply)
                if self.mail_reply.startswith("2"):
                    mail, rcpts = line, []
            elif verb == "RCPT":
                if mail is None:
                    send("503 5.5.1 need MAIL")
                    continue
                address = line[line.index("<") + 1:line.index(">")]
                reply = self.rcpt(address)
                send(reply)
                if reply.startswith("2"):
                    rcpts.append(line)
            elif verb == "DATA":
                if not rcpts:
                    send("554 5.5.1 no valid recipients")
                    continue
                send(self.data_reply)
                if not self.data_reply.startswith("3"):
                    continue
                data = []
                while True:
                    raw = f.readline()
                    if not raw:
                        return
                    if raw == b".\r\n":
                        break
                    data.append(raw)
                if self.drop_at == "end":
                    return
                if self.end_delay:
                    threading.Event().wait(self.end_delay)
                send(self.end_reply)
                if self.end_reply.startswith("2"):
                    with self.lock:
                        self.messages.append((mail, rcpts, b"".join(data)))
                mail, rcpts = None, []
            elif verb == "RSET":
                mail, rcpts = None, []
                send("250 2.0.0 Ok")
            elif verb == "QUIT":
                send("221 2.0.0 Bye")
                return
            elif verb == "NOOP":
                send("250 2.0.0 Ok")
            else:
                send("502 5.5.2 unknown command")
