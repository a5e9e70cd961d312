#!/usr/bin/env python3
"""scripts/s3front.py — a verifying S3 front and temporary-credential issuer for soak's tests.
Python 3 standard library only.

SeaweedFS (4.48) answers InvalidAccessKeyId to any request carrying X-Amz-Security-Token, and
every IMDS or container credential comes with one. This front stands where AWS would:

- it ISSUES temporary keys (access key, secret, session token, expiration `--lifetime` seconds
  from now), a new key on every fetch, through
    the container-credentials endpoint  GET /__front/creds  (Authorization must equal --auth-token):
      AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:PORT/__front/creds
      AWS_CONTAINER_AUTHORIZATION_TOKEN=<--auth-token>
    and IMDSv2 (PUT /latest/api/token, then GET /latest/meta-data/iam/security-credentials/[ROLE]):
      AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:PORT
    and GET /__front/process (same Authorization), the JSON Version 1 a credential_process prints,
    and STS (AWS_ENDPOINT_URL_STS=http://127.0.0.1:PORT), a query-protocol POST to / answered
    with STS's XML:
      AssumeRoleWithWebIdentity: WebIdentityToken must equal the current content of
        --web-identity-token-file (read on every call, so a test can rotate it), else 400
        InvalidIdentityToken;
      AssumeRole: the SigV4 signature (service sts) must be made with a --source-key AKID:SECRET
        (or an issued key with its token: chained roles), else 403 SignatureDoesNotMatch /
        InvalidClientTokenId;
      --sts-fail N answers the first N STS calls 500 InternalFailure (clients must retry);
- `--skew S` adds S seconds to every Expiration it reports but not to the real one: a client
  that trusts the reported time meets 400 ExpiredToken before it thinks a refresh is due;
- it CHECKS every other request as S3 does: the SigV4 signature is recomputed with the secret
  issued for the request's access key (403 InvalidAccessKeyId for an unknown key, 403
  SignatureDoesNotMatch for a wrong signature), the signed x-amz-security-token must be the one
  issued with that key (403 InvalidToken), and the key must not have expired (400 ExpiredToken);
- it then RE-SIGNS the request with the upstream's static keys (--upstream-key/--upstream-secret,
  default AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and forwards it, streaming the body back.

GET /__front/stats answers JSON: {"issued": n, "issued_by": {source: n}, "requests": {access key:
count forwarded}, "refused": {error code: count}} (STS refusals count as "STS:" + code); it is also
written to --stats FILE after every request.

Usage: s3front.py --upstream http://127.0.0.1:8335 [--listen-port 0] [--lifetime 900]
                  [--auth-token T] [--role soak-test-role] [--region us-east-1] [--stats FILE]
                  [--skew S] [--web-identity-token-file F] [--source-key AKID:SECRET]... [--sts-fail N]
Prints `PORT=nnnn` on stdout once it listens. Exit 0 on SIGTERM/SIGINT, 2 on bad arguments.
"""
import argparse
import datetime
import hashlib
import hmac
import http.client
import http.server
import json
import os
import secrets
import signal
import sys
import threading
import urllib.parse

CHUNK = 64 * 1024
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# Headers never passed upstream: hop-by-hop ones, and the client's signature (the front signs anew).
DROP = {"authorization", "x-amz-security-token", "x-amz-date", "x-amz-content-sha256", "host", "connection",
        "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "expect"}


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def uri_encode(s, slash=True):
    return urllib.parse.quote(s, safe="-_.~" + ("/" if not slash else ""))


def canonical_query(raw):
    pairs = []
    if raw:
        for part in raw.split("&"):
            if part == "":
                continue
            k, _, v = part.partition("=")
            pairs.append((uri_encode(urllib.parse.unquote(k)), uri_encode(urllib.parse.unquote(v))))
    pairs.sort()
    return "&".join(f"{k}={v}" for k, v in pairs)


def signing_key(secret, date, region, service):
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for m in (region, service, "aws4_request"):
        k = hmac.new(k, m.encode(), hashlib.sha256).digest()
    return k


def signature(secret, method, path, raw_query, headers, signed_names, payload_hash, amz_date, scope):
    """headers: dict of lowercased name -> value. Returns the hex signature."""
    canon_headers = "".join(f"{n}:{' '.join(headers.get(n, '').strip().split())}\n" for n in signed_names)
    creq = "\n".join([method, path, canonical_query(raw_query), canon_headers, ";".join(signed_names),
                      payload_hash])
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    date, region, service, _ = scope.split("/")
    return hmac.new(signing_key(secret, date, region, service), sts.encode(), hashlib.sha256).hexdigest()


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.keys = {}  # access key -> (secret, token, expiration datetime)
        self.issued = 0
        self.issued_by = {}
        self.sts_calls = 0
        self.requests = {}
        self.refused = {}
        self.imds_tokens = set()

    def issue(self, source):
        with self.lock:
            self.issued += 1
            self.issued_by[source] = self.issued_by.get(source, 0) + 1
            key = "ASIAFRONT%08d" % self.issued
            secret = secrets.token_urlsafe(30)
            token = "FRONTTOKEN" + secrets.token_urlsafe(48)
            expires = utc_now() + datetime.timedelta(seconds=self.args.lifetime)
            self.keys[key] = (secret, token, expires)
        return key, secret, token, expires

    def count(self, table, name):
        with self.lock:
            table[name] = table.get(name, 0) + 1
            snapshot = self.snapshot()
        if self.args.stats:
            tmp = self.args.stats + ".tmp"
            with open(tmp, "w") as f:
                f.write(snapshot)
            os.replace(tmp, self.args.stats)

    def snapshot(self):
        return json.dumps({"issued": self.issued, "issued_by": self.issued_by, "requests": self.requests,
                           "refused": self.refused}, sort_keys=True)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None
    upstream = None

    def log_message(self, fmt, *a):  # quiet: the stats say what happened
        pass

    def reply(self, status, body=b"", ctype="application/xml", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def s3_error(self, status, code, message):
        self.state.count(self.state.refused, code)
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
                f"<RequestId>front</RequestId></Error>").encode()
        self.reply(status, body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    # ---- credential issuing
    def creds_json(self, imds):
        key, secret, token, expires = self.state.issue("imds" if imds else "container")
        d = {"AccessKeyId": key, "SecretAccessKey": secret, "Token": token, "Expiration": self.reported(expires)}
        if imds:
            d.update({"Code": "Success", "LastUpdated": iso(utc_now()), "Type": "AWS-HMAC"})
        else:
            d["RoleArn"] = "arn:aws:iam::123456789012:role/" + self.state.args.role
        return json.dumps(d).encode()

    def reported(self, expires):
        return iso(expires + datetime.timedelta(seconds=self.state.args.skew))

    def sts_reply(self, status, action=None, code=None, message="", key=None):
        if code:
            self.state.count(self.state.refused, "STS:" + code)
            kind = "Receiver" if status >= 500 else "Sender"
            body = (f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">\n  <Error>\n'
                    f"    <Type>{kind}</Type>\n    <Code>{code}</Code>\n    <Message>{message}</Message>\n"
                    f"  </Error>\n  <RequestId>front-sts</RequestId>\n</ErrorResponse>\n")
            return self.reply(status, body.encode(), "text/xml")
        key, secret, token, expires = self.state.issue("sts-web" if action == "AssumeRoleWithWebIdentity" else "sts-role")
        role = "arn:aws:sts::123456789012:assumed-role/" + self.state.args.role + "/front"
        extra = ("    <SubjectFromWebIdentityToken>system:serviceaccount:default:soak</SubjectFromWebIdentityToken>\n"
                 "    <Audience>sts.amazonaws.com</Audience>\n    <Provider>front</Provider>\n"
                 if action == "AssumeRoleWithWebIdentity" else "")
        body = (f'<{action}Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/">\n  <{action}Result>\n{extra}'
                f"    <AssumedRoleUser>\n      <AssumedRoleId>AROAFRONT:front</AssumedRoleId>\n      <Arn>{role}</Arn>\n"
                f"    </AssumedRoleUser>\n    <Credentials>\n      <SecretAccessKey>{secret}</SecretAccessKey>\n"
                f"      <SessionToken>{token}</SessionToken>\n      <Expiration>{self.reported(expires)}</Expiration>\n"
                f"      <AccessKeyId>{key}</AccessKeyId>\n    </Credentials>\n    <PackedPolicySize>6</PackedPolicySize>\n"
                f"  </{action}Result>\n  <ResponseMetadata><RequestId>front-sts</RequestId></ResponseMetadata>\n"
                f"</{action}Response>\n")
        return self.reply(200, body.encode(), "text/xml")

    def sts(self, body):
        """STS's query protocol: AssumeRoleWithWebIdentity and AssumeRole."""
        a = self.state.args
        form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        action = form.get("Action")
        with self.state.lock:
            self.state.sts_calls += 1
            failing = self.state.sts_calls <= a.sts_fail
        if failing:
            return self.sts_reply(500, code="InternalFailure", message="front: failing as told (--sts-fail)")
        if form.get("Version") != "2011-06-15" or not form.get("RoleArn") or not form.get("RoleSessionName"):
            return self.sts_reply(400, code="MissingParameter", message="Version, RoleArn and RoleSessionName are required")
        if action == "AssumeRoleWithWebIdentity":
            expected = None
            if a.web_identity_token_file:
                try:
                    with open(a.web_identity_token_file) as f:
                        expected = f.read().strip()
                except OSError:
                    expected = None
            if self.headers.get("Authorization") or not expected or form.get("WebIdentityToken") != expected:
                return self.sts_reply(400, code="InvalidIdentityToken", message="Couldn't verify the web identity token")
            return self.sts_reply(200, action=action)
        if action == "AssumeRole":
            problem = self.sts_signature_problem(body)
            if problem:
                return self.sts_reply(403, code=problem[0], message=problem[1])
            return self.sts_reply(200, action=action)
        return self.sts_reply(400, code="InvalidAction", message="Could not find operation " + str(action))

    def sts_signature_problem(self, body):
        """(code, message) when AssumeRole's SigV4 signature is not one of a known key's, else None."""
        auth = self.headers.get("Authorization") or ""
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            return ("MissingAuthenticationToken", "Request is missing Authentication Token")
        fields = dict(p.strip().partition("=")[::2] for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
        try:
            key, scope = fields["Credential"].split("/", 1)
            signed = fields["SignedHeaders"].split(";")
            sig = fields["Signature"]
        except (KeyError, ValueError):
            return ("IncompleteSignature", "The request signature does not conform to AWS standards")
        token = None
        sources = dict(k.split(":", 1) for k in self.state.args.source_key)
        if key in sources:
            secret = sources[key]
        else:
            with self.state.lock:
                entry = self.state.keys.get(key)
            if entry is None:
                return ("InvalidClientTokenId", "The security token included in the request is invalid.")
            secret, token, expires = entry
            if utc_now() >= expires:
                return ("ExpiredToken", "The security token included in the request is expired")
        headers = {k.lower(): v for k, v in self.headers.items()}
        if scope.split("/")[2:3] != ["sts"]:
            return ("SignatureDoesNotMatch", "Credential should be scoped to correct service: 'sts'.")
        payload = headers.get("x-amz-content-sha256") or hashlib.sha256(body).hexdigest()
        if payload != hashlib.sha256(body).hexdigest():
            return ("SignatureDoesNotMatch", "The payload hash does not match the body")
        expected = signature(secret, "POST", "/", "", headers, signed, payload, headers.get("x-amz-date", ""), scope)
        if not hmac.compare_digest(expected, sig):
            return ("SignatureDoesNotMatch", "The request signature we calculated does not match the signature "
                                             "you provided.")
        if token is not None and ("x-amz-security-token" not in signed or headers.get("x-amz-security-token") != token):
            return ("InvalidClientTokenId", "The security token included in the request is invalid.")
        return None

    def issuer(self, path):
        a = self.state.args
        if path == "/__front/stats":
            return self.reply(200, self.state.snapshot().encode(), "application/json")
        if path == "/__front/creds":
            if a.auth_token and self.headers.get("Authorization") != a.auth_token:
                return self.reply(401, b'{"message":"bad authorization token"}', "application/json")
            return self.reply(200, self.creds_json(False), "application/json")
        if path == "/__front/process":
            if a.auth_token and self.headers.get("Authorization") != a.auth_token:
                return self.reply(401, b'{"message":"bad authorization token"}', "application/json")
            key, secret, token, expires = self.state.issue("process")
            doc = {"Version": 1, "AccessKeyId": key, "SecretAccessKey": secret, "SessionToken": token,
                   "Expiration": self.reported(expires)}
            return self.reply(200, json.dumps(doc).encode(), "application/json")
        if path == "/latest/api/token" and self.command == "PUT":
            if not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                return self.reply(400, b"missing ttl", "text/plain")
            tok = secrets.token_urlsafe(24)
            with self.state.lock:
                self.state.imds_tokens.add(tok)
            return self.reply(200, tok.encode(), "text/plain")
        if path.startswith("/latest/meta-data/iam/security-credentials/"):
            with self.state.lock:
                ok = self.headers.get("X-aws-ec2-metadata-token") in self.state.imds_tokens
            if not ok:
                return self.reply(401, b"", "text/plain")
            role = path[len("/latest/meta-data/iam/security-credentials/"):]
            if role == "":
                return self.reply(200, a.role.encode(), "text/plain")
            if role != a.role:
                return self.reply(404, b"", "text/plain")
            return self.reply(200, self.creds_json(True), "application/json")
        return None

    # ---- verifying and forwarding
    def verify(self, path, query):
        """Returns the access key, or None after answering with an S3 error."""
        auth = self.headers.get("Authorization") or ""
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            self.s3_error(403, "AccessDenied", "Anonymous access is not allowed by this front")
            return None
        fields = {}
        for part in auth[len("AWS4-HMAC-SHA256 "):].split(","):
            k, _, v = part.strip().partition("=")
            fields[k] = v
        try:
            key, scope = fields["Credential"].split("/", 1)
            signed = fields["SignedHeaders"].split(";")
            sig = fields["Signature"]
        except (KeyError, ValueError):
            self.s3_error(400, "AuthorizationHeaderMalformed", "The authorization header is malformed")
            return None
        with self.state.lock:
            entry = self.state.keys.get(key)
        if entry is None:
            self.s3_error(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
            return None
        secret, token, expires = entry
        headers = {k.lower(): v for k, v in self.headers.items()}
        expected = signature(secret, self.command, path, query, headers, signed,
                             headers.get("x-amz-content-sha256", EMPTY_SHA256), headers.get("x-amz-date", ""), scope)
        if not hmac.compare_digest(expected, sig):
            self.s3_error(403, "SignatureDoesNotMatch",
                          "The request signature we calculated does not match the signature you provided.")
            return None
        if "x-amz-security-token" not in signed or headers.get("x-amz-security-token") != token:
            self.s3_error(403, "InvalidToken", "The provided token is malformed or otherwise invalid.")
            return None
        if utc_now() >= expires:
            self.s3_error(400, "ExpiredToken", "The provided token has expired.")
            return None
        return key

    def forward(self, path, query, body):
        a = self.state.args
        up = self.upstream
        amz_date = utc_now().strftime("%Y%m%dT%H%M%SZ")
        scope = f"{amz_date[:8]}/{a.region}/s3/aws4_request"
        payload = hashlib.sha256(body).hexdigest()
        out = {k.lower(): v for k, v in self.headers.items() if k.lower() not in DROP}
        out["host"] = up.netloc
        out["x-amz-date"] = amz_date
        out["x-amz-content-sha256"] = payload
        signed = sorted(out)
        sig = signature(a.upstream_secret, self.command, path, query, out, signed, payload, amz_date, scope)
        out["authorization"] = (f"AWS4-HMAC-SHA256 Credential={a.upstream_key}/{scope}, "
                                f"SignedHeaders={';'.join(signed)}, Signature={sig}")
        if body:
            out["content-length"] = str(len(body))
        target = path + ("?" + query if query else "")
        conn = getattr(self, "_conn", None)
        for attempt in range(2):
            if conn is None:
                conn = http.client.HTTPConnection(up.hostname, up.port, timeout=120)
            try:
                conn.request(self.command, target, body=body or None, headers=out)
                resp = conn.getresponse()
                break
            except (ConnectionError, http.client.HTTPException, OSError):
                conn.close()
                conn = None
                if attempt == 1:
                    raise
        self._conn = conn
        self.send_response(resp.status, resp.reason)
        length = resp.getheader("Content-Length")
        data = None
        if length is None and self.command != "HEAD":
            data = resp.read()
            length = str(len(data))
        for k, v in resp.getheaders():
            if k.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length"):
                self.send_header(k, v)
        if length is not None:
            self.send_header("Content-Length", length)
        self.end_headers()
        if self.command == "HEAD":
            resp.read()
            return
        if data is not None:
            self.wfile.write(data)
            return
        while True:
            chunk = resp.read(CHUNK)
            if not chunk:
                break
            self.wfile.write(chunk)

    def handle_any(self):
        target = self.path
        path, _, query = target.partition("?")
        if self.issuer(path) is not None or path.startswith("/__front/") or path.startswith("/latest/"):
            return
        body = self.read_body()
        if self.command == "POST" and path == "/" and (self.headers.get("Content-Type") or "").startswith(
                "application/x-www-form-urlencoded"):
            return self.sts(body)
        key = self.verify(path, query)
        if key is None:
            return
        self.state.count(self.state.requests, key)
        self.forward(path, query, body)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = handle_any


def main():
    p = argparse.ArgumentParser(description="verifying S3 front and credential issuer for tests")
    p.add_argument("--upstream", required=True)
    p.add_argument("--listen-port", type=int, default=0)
    p.add_argument("--lifetime", type=float, default=900, help="seconds issued keys live")
    p.add_argument("--auth-token", default="front-auth-token")
    p.add_argument("--role", default="soak-test-role")
    p.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    p.add_argument("--upstream-key", default=os.environ.get("AWS_ACCESS_KEY_ID"))
    p.add_argument("--upstream-secret", default=os.environ.get("AWS_SECRET_ACCESS_KEY"))
    p.add_argument("--stats")
    p.add_argument("--skew", type=float, default=0, help="seconds added to every reported Expiration")
    p.add_argument("--web-identity-token-file", help="AssumeRoleWithWebIdentity accepts this file's content")
    p.add_argument("--source-key", action="append", default=[], metavar="AKID:SECRET",
                   help="static keys AssumeRole may be signed with (repeatable)")
    p.add_argument("--sts-fail", type=int, default=0, help="answer the first N STS calls 500")
    args = p.parse_args()
    if not args.upstream_key or not args.upstream_secret:
        print("s3front: no upstream keys (--upstream-key/--upstream-secret or AWS_ACCESS_KEY_ID/...)", file=sys.stderr)
        sys.exit(2)
    if any(":" not in k for k in args.source_key):
        print("s3front: --source-key takes AKID:SECRET", file=sys.stderr)
        sys.exit(2)
    if args.lifetime <= 0:
        print("s3front: --lifetime must be > 0", file=sys.stderr)
        sys.exit(2)
    Handler.state = State(args)
    Handler.upstream = urllib.parse.urlsplit(args.upstream)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.listen_port), Handler)
    server.daemon_threads = True
    print(f"PORT={server.server_address[1]}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
