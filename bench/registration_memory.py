#!/usr/bin/env python3
"""Memory of one `voxide up` node holding many registered subscribers (issue 13, "Memory").

Phases, each timed and with the server's RSS (VmRSS, RssAnon from /proc/<pid>/status):

  1. provision: `voxide up` on a fresh data dir; the domain, the customer and the first
     subscribers go through the REST API, and one of them registers through the LB with SIPp,
     so the API and the registrar write the reference rows. The node is stopped.
  2. bulk: the remaining subscribers (with their primary number) and one binding per
     subscriber are written straight into the SQLite file, in the shapes the API and the
     registrar write: HA1 values computed as the store does, a Path as the LB writes it, a
     `received` address (every phone is behind its own NAT), Call-ID, CSeq, User-Agent, and a
     `+sip.instance`/`reg-id` for every fourth phone. Before writing, the script generates the
     rows of the API-made subscribers and of the SIPp registration the same way and stops if
     any column differs from what voxide wrote (times, Call-ID and CSeq aside).
  3. load: `voxide up` starts on that database; the proxy loads every binding
     (`Location::load`). RSS once it is ready and settled is the "after load" figure.
  4. peak: SIPp re-registers subscribers (their own Contact, so each refreshes its binding) at
     --rate for --load-secs; the highest RSS seen is the "peak" figure.
  5. after: no traffic for --watch-secs; RSS at 10, 30, 60 and 120 s after SIPp's last
     registration shows whether the node gives memory back.

Everything runs on loopback: the phones' Contact and NAT addresses in the bulk rows are 127.x
strings that are never contacted (no call is made). Only processes this script starts are
stopped, by PID.

  CARGO_TARGET_DIR=target cargo build --release -p voxide
  python3 bench/registration_memory.py --subscribers 1000000 --rate 2000 --load-secs 60
"""

import argparse
import base64
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SCENARIO = os.path.join(HERE, "sipp", "register_refresh.xml")
ADMIN_PASSWORD = "bench-admin-secret"
USER_AGENTS = [
    "Yealink SIP-T46U 108.86.0.75",
    "Grandstream GXP2170 1.0.11.74",
    "PolycomVVX-VVX_450-UA/6.4.3.5018",
    "Cisco/SPA504G-7.6.2c",
    "Zoiper v2.10.19.3",
    "Linphone-Desktop/5.2.6 (Debian GNU/Linux 12) LinphoneSDK/5.3.72",
    "snom D785/10.1.159.12",
    "FRITZ!OS",
]
SIPP_USER_AGENT = USER_AGENTS[0]


def free_port(ip, kind=socket.SOCK_DGRAM):
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((ip, 0))
            port = s.getsockname()[1]
        other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
        try:
            with socket.socket(socket.AF_INET, other) as s:
                s.bind((ip, port))
            return port
        except OSError:
            continue
    raise SystemExit(f"no free port on {ip}")


def memory_kib(pid):
    """VmRSS, RssAnon and VmHWM of a process, KiB (all threads share them)."""
    values = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                    values[key] = int(rest.split()[0])
    except OSError:
        pass
    return values


def mib(kib):
    return round(kib / 1024, 1)


class Sampler(threading.Thread):
    """Samples the server's memory every `interval` seconds into (time, VmRSS, RssAnon)."""

    def __init__(self, pid, interval=0.5):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples = []
        self.stop_event = threading.Event()

    def run(self):
        while not self.stop_event.is_set():
            values = memory_kib(self.pid)
            if values:
                self.samples.append((time.time(), values.get("VmRSS", 0), values.get("RssAnon", 0)))
            self.stop_event.wait(self.interval)

    def peak(self, since, until):
        inside = [s for s in self.samples if since <= s[0] <= until]
        return max(inside, key=lambda s: s[1]) if inside else None

    def at(self, moment):
        """The sample nearest to `moment`."""
        return min(self.samples, key=lambda s: abs(s[0] - moment)) if self.samples else None


class Node:
    """One `voxide up` on loopback ports with a plain-HTTP API."""

    def __init__(self, args, saved=None):
        self.args = args
        self.process = None
        self.config_path = os.path.join(args.workdir, "voxide.toml")
        if saved:
            # The Path in the stored rows names the LB's internal address: same ports again.
            self.api_port, self.internal = saved["api_port"], saved["internal"]
            self.sip_port = saved["sip_port"]
            return
        self.api_port = free_port("127.0.0.1", socket.SOCK_STREAM)
        proxy_port = free_port("127.0.0.1")
        self.internal = f"127.0.0.1:{free_port('127.0.0.1')}"
        ng_port = free_port("127.0.0.1")
        self.sip_port = free_port(args.ip)
        with open(self.config_path, "w") as f:
            f.write(
                f'data_dir = "{os.path.join(args.workdir, "data")}"\n\n'
                f'[api]\nlisten = "127.0.0.1:{self.api_port}"\ntls = "plain"\n\n'
                f'[lb]\nudp_listen = "{args.ip}:{self.sip_port}"\ntcp_listen = "off"\n'
                f'tls_listen = "off"\npublic_address = "{args.ip}"\n'
                f'internal_listen = "{self.internal}"\n'
                f'proxy = "127.0.0.1:{proxy_port}"\ndomains = ["{args.domain}"]\n\n'
                f'[proxy]\nlisten = "127.0.0.1:{proxy_port}"\ntrusted_lb = ["127.0.0.1"]\n'
                f'domains = ["{args.domain}"]\n'
                # SIPp 3.6 answers only the first challenge and knows only MD5.
                f'digest_algorithms = ["MD5"]\n\n'
                f'[media]\nng_listen = "127.0.0.1:{ng_port}"\naddress = "127.0.0.1"\n')

    def saved(self):
        return {"api_port": self.api_port, "internal": self.internal, "sip_port": self.sip_port}

    def start(self):
        """Starts the node; returns the seconds until it said "ready"."""
        binary = self.args.voxide_bin
        if not os.access(binary, os.X_OK):
            raise SystemExit(f"{binary} missing: cargo build --release -p voxide")
        env = dict(os.environ, VOXIDE_ADMIN_PASSWORD=ADMIN_PASSWORD,
                   RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        log_path = os.path.join(self.args.workdir, "voxide.log")
        self.log = open(log_path, "a")
        offset = os.path.getsize(log_path)
        started = time.time()
        self.process = subprocess.Popen([binary, "up", "--config", self.config_path],
                                        stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = started + self.args.start_timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"voxide exited ({self.process.returncode}), see {log_path}")
            with open(log_path) as f:
                f.seek(offset)
                if "ready" in f.read().split():
                    return time.time() - started
            time.sleep(0.1)
        raise SystemExit(f"voxide not ready after {self.args.start_timeout} s, see {log_path}")

    def request(self, path, body):
        token = base64.b64encode(f"administrator:{ADMIN_PASSWORD}".encode()).decode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}{path}", data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Basic {token}"},
            method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                location = response.headers.get("Location", "")
        except urllib.error.HTTPError as error:
            raise SystemExit(f"POST {path}: {error.code} {error.read().decode()[:300]}")
        return int(location.rstrip("/").rsplit("/", 1)[1])

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# ---------------------------------------------------------------- the rows


def username(index, width):
    return f"user{index:0{width}d}"


def password(user):
    return f"pw{user}"


def contact_host(index):
    """The phone's own (private) address: what it writes into its Contact."""
    return f"127.{3 + (index >> 16)}.{(index >> 8) & 255}.{index & 255}:5060"


def nat_address(index):
    """The public side of the phone's NAT: where its REGISTERs come from."""
    return f"127.{40 + (index >> 16)}.{(index >> 8) & 255}.{index & 255}:{10000 + index % 50000}"


def subscriber_row(index, width, domain, domain_id, customer_id):
    user = username(index, width)
    secret = password(user)
    return {
        "uuid": str(uuid.uuid4()), "customer_id": customer_id, "domain_id": domain_id,
        "username": user, "webusername": None,
        "ha1_md5": hashlib.md5(f"{user}:{domain}:{secret}".encode()).hexdigest(),
        "ha1_sha256": hashlib.sha256(f"{user}:{domain}:{secret}".encode()).hexdigest(),
        "webpassword_hash": None, "display_name": None, "email": None, "external_id": None,
        "status": "active", "administrative": 0,
    }


def number_row(index):
    sn = f"{1000000 + index}"
    return {"cc": "43", "ac": "99", "sn": sn, "e164": f"4399{sn}", "is_primary": 1,
            "is_devid": 0}


def location_row(index, width, domain, internal, source, user_agent, instance, now, rng):
    """The binding the registrar writes for a REGISTER of user `index` from `source`
    (ip:port, the NAT's public side) through the LB whose internal address is `internal`."""
    user = username(index, width)
    path = f"<sip:{internal};lr;received=sip:{source}%3Btransport%3Dudp>"
    expires_at = now + 600 + rng.randrange(3000)
    return {
        "domain": domain, "username": user, "contact": f"sip:{user}@{contact_host(index)}",
        "q": 1000, "expires_at": expires_at, "path": json.dumps([path]),
        "received": f"sip:{source}", "call_id": f"{uuid.uuid4()}@{contact_host(index).split(':')[0]}",
        "cseq": rng.randrange(1, 2000), "user_agent": user_agent,
        "instance": f"<urn:uuid:{uuid.uuid4()}>" if instance else None,
        "reg_id": 1 if instance else None, "updated_at": expires_at - 3600,
    }


SUBSCRIBER_COLUMNS = ["uuid", "customer_id", "domain_id", "username", "webusername", "ha1_md5",
                      "ha1_sha256", "webpassword_hash", "display_name", "email", "external_id",
                      "status", "administrative"]
LOCATION_COLUMNS = ["domain", "username", "contact", "q", "expires_at", "path", "received",
                    "call_id", "cseq", "user_agent", "instance", "reg_id", "updated_at"]


def fetch_dict(db, sql, params):
    cursor = db.execute(sql, params)
    names = [d[0] for d in cursor.description]
    row = cursor.fetchone()
    return dict(zip(names, row)) if row else None


def check_same(kind, made_by_voxide, generated, ignore):
    for column, value in generated.items():
        if column in ignore:
            continue
        if made_by_voxide.get(column) != value:
            raise SystemExit(f"{kind}: column {column}: voxide wrote {made_by_voxide.get(column)!r}, "
                             f"this script would write {value!r}")


def write_injection(path, first, count, width):
    with open(path, "w") as f:
        f.write("SEQUENTIAL\n")
        for index in range(first, first + count):
            user = username(index, width)
            f.write(f"{user};[authentication username={user} password={password(user)}];"
                    f"{contact_host(index)};{SIPP_USER_AGENT}\n")


def sipp(args, node, name, inf, total, rate, port):
    stat = os.path.join(args.workdir, f"{name}.stat.csv")
    command = ["sipp", f"{args.ip}:{node.sip_port}", "-sf", SCENARIO, "-i", args.ip,
               "-p", str(port), "-m", str(total), "-r", str(rate), "-rp", "1000",
               "-l", str(min(max(1000, rate * 4), 15000)), "-nostdin",
               "-timeout", f"{total // max(rate, 1) + 60}s", "-timeout_error",
               "-max_recv_loops", "10000", "-max_sched_loops", "10000",
               "-trace_stat", "-stf", stat, "-fd", "1",
               "-trace_err", "-error_file", os.path.join(args.workdir, f"{name}.errors.log"),
               "-inf", inf, "-auth_uri", args.domain,
               "-key", "domain", args.domain, "-key", "expires", "3600"]
    with open(os.path.join(args.workdir, f"{name}.out"), "w") as out:
        code = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT)
    rows = []
    try:
        import csv
        with open(stat) as f:
            rows = list(csv.DictReader(f, delimiter=";"))
    except OSError:
        pass
    last = rows[-1] if rows else {}
    success = int(float(last.get("SuccessfulCall(C)", 0) or 0))
    failed = int(float(last.get("FailedCall(C)", 0) or 0))
    retrans = int(float(last.get("Retransmissions(C)", 0) or 0))
    return {"exit": code, "success": success, "failed": failed, "retrans": retrans}


# ---------------------------------------------------------------- phases


def provision(args, node):
    """Domain, customer and the first subscribers through the API; one SIPp registration."""
    node.request("/api/domains/", {"domain": args.domain})
    customer = node.request("/api/customers/", {"name": f"memory bench customer of {args.domain}"})
    for index in range(args.api_subscribers):
        user = username(index, args.width)
        node.request("/api/subscribers/", {
            "customer_id": customer, "domain": args.domain, "username": user,
            "password": password(user), "primary_number": {"cc": "43", "ac": "99",
                                                            "sn": f"{1000000 + index}"}})
    inf = os.path.join(args.workdir, "reference.csv")
    write_injection(inf, 0, 1, args.width)
    result = sipp(args, node, "reference", inf, 1, 1, args.sipp_port)
    if result["success"] != 1:
        raise SystemExit(f"the reference registration failed: {result}, see {args.workdir}")


def bulk_write(args, node):
    db = sqlite3.connect(os.path.join(args.workdir, "data", "voxide.db"))
    domain_id, customer_id = db.execute(
        "SELECT d.id, s.customer_id FROM domains d JOIN subscribers s ON s.domain_id = d.id "
        "WHERE d.domain = ? LIMIT 1", (args.domain,)).fetchone()
    # The API's and the registrar's own rows against what this script would write.
    for index in range(args.api_subscribers):
        made = fetch_dict(db, "SELECT * FROM subscribers WHERE username = ?",
                          (username(index, args.width),))
        check_same("subscriber", made, subscriber_row(index, args.width, args.domain, domain_id,
                                                      customer_id), {"uuid"})
        number = fetch_dict(db, "SELECT * FROM numbers WHERE subscriber_id = ?", (made["id"],))
        check_same("number", number, number_row(index), set())
    made = fetch_dict(db, "SELECT * FROM location WHERE username = ?", (username(0, args.width),))
    sipp_source = f"{args.ip}:{args.sipp_port}"
    reference = location_row(0, args.width, args.domain, node.internal, sipp_source,
                             SIPP_USER_AGENT, False, int(time.time()), random.Random(0))
    check_same("location", made, reference, {"expires_at", "updated_at", "call_id", "cseq"})

    rng = random.Random(13)
    now = int(time.time())
    db.execute("PRAGMA synchronous = OFF")
    started = time.time()
    chunk = 50_000
    for first in range(0, args.subscribers, chunk):
        indexes = range(first, min(first + chunk, args.subscribers))
        fresh = [i for i in indexes if i >= args.api_subscribers]
        db.executemany(
            f"INSERT INTO subscribers ({', '.join(SUBSCRIBER_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(SUBSCRIBER_COLUMNS))})",
            ([row[c] for c in SUBSCRIBER_COLUMNS] for row in
             (subscriber_row(i, args.width, args.domain, domain_id, customer_id) for i in fresh)))
        db.executemany(
            "INSERT INTO numbers (subscriber_id, cc, ac, sn, e164, is_primary, is_devid) "
            "SELECT id, ?, ?, ?, ?, ?, ? FROM subscribers WHERE domain_id = ? AND username = ?",
            ([n["cc"], n["ac"], n["sn"], n["e164"], n["is_primary"], n["is_devid"], domain_id,
              username(i, args.width)] for i, n in ((i, number_row(i)) for i in fresh)))
        db.executemany(
            f"INSERT OR REPLACE INTO location ({', '.join(LOCATION_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(LOCATION_COLUMNS))})",
            ([row[c] for c in LOCATION_COLUMNS] for row in
             (location_row(i, args.width, args.domain, node.internal, nat_address(i),
                           USER_AGENTS[i % len(USER_AGENTS)], i % 4 == 3, now, rng)
              for i in indexes)))
        db.commit()
        print(f"  {min(first + chunk, args.subscribers)} subscribers and bindings written",
              flush=True)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return time.time() - started


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subscribers", type=int, default=int(os.environ.get("SUBSCRIBERS", "100000")))
    ap.add_argument("--rate", type=int, default=int(os.environ.get("RATE", "2000")),
                    help="re-registrations per second during the load phase")
    ap.add_argument("--load-secs", type=int, default=int(os.environ.get("LOAD_SECS", "60")))
    ap.add_argument("--watch-secs", type=int, default=int(os.environ.get("WATCH_SECS", "120")))
    ap.add_argument("--settle-secs", type=int, default=10,
                    help="quiet time after start-up before the 'after load' figure")
    ap.add_argument("--api-subscribers", type=int, default=3)
    ap.add_argument("--ip", default=os.environ.get("BENCH_IP", "127.0.0.62"))
    ap.add_argument("--domain", default="bench.local")
    ap.add_argument("--start-timeout", type=int, default=600)
    ap.add_argument("--workdir", default=os.environ.get("WORKDIR", "/tmp/voxide-memory"))
    ap.add_argument("--reuse", action="store_true",
                    help="keep the data dir of an earlier run with the same --subscribers "
                         "(skips phases 1 and 2)")
    ap.add_argument("--timer-j", type=int, default=0,
                    help="[proxy] timer_j_seconds for the run (0: the default, 32 s)")
    ap.add_argument("--prepare-only", action="store_true",
                    help="stop after phases 1 and 2 (run the rest with --reuse)")
    ap.add_argument("--voxide-bin", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target")), "release", "voxide"))
    ap.add_argument("--label", default="", help="a name for this run in the JSON result")
    args = ap.parse_args()
    if not args.ip.startswith("127."):
        raise SystemExit("--ip must be a 127.x loopback address")
    if not shutil.which("sipp"):
        raise SystemExit("sipp missing: apt-get install -y sip-tester")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    args.width = max(7, len(str(args.subscribers - 1)))
    args.api_subscribers = max(1, min(args.api_subscribers, args.subscribers))

    marker = os.path.join(args.workdir, "bulk.json")
    database = os.path.join(args.workdir, "data", "voxide.db")
    pristine = os.path.join(args.workdir, "pristine.db")
    saved = None
    if args.reuse and os.path.exists(marker):
        with open(marker) as f:
            saved = json.load(f)
        if saved.get("subscribers") != args.subscribers:
            saved = None
    result = {"label": args.label, "subscribers": args.subscribers, "rate": args.rate,
              "load_secs": args.load_secs}
    if saved is None:
        shutil.rmtree(args.workdir, ignore_errors=True)
        os.makedirs(args.workdir)
        sipp_port = free_port(args.ip)
        args.sipp_port = sipp_port
        node = Node(args)
        try:
            node.start()
            time.sleep(args.settle_secs)
            empty = mib(memory_kib(node.process.pid).get("VmRSS", 0))
            provision(args, node)
        finally:
            node.stop()
        written = bulk_write(args, node)
        print(f"bulk write of {args.subscribers} subscribers + bindings: {written:.0f} s",
              flush=True)
        shutil.copyfile(database, pristine)
        saved = dict(node.saved(), subscribers=args.subscribers, sipp_port=sipp_port,
                     empty_rss_mib=empty, written_at=int(time.time()))
        with open(marker, "w") as f:
            json.dump(saved, f)
    else:
        # Back to the rows as written, their expiry moved as if written now.
        for suffix in ("-wal", "-shm"):
            if os.path.exists(database + suffix):
                os.remove(database + suffix)
        shutil.copyfile(pristine, database)
        db = sqlite3.connect(database)
        shift = int(time.time()) - saved["written_at"]
        db.execute("UPDATE location SET expires_at = expires_at + ?, updated_at = updated_at + ?",
                   (shift, shift))
        db.commit()
        db.close()
    if args.prepare_only:
        return 0
    node = Node(args, saved)
    args.sipp_port = saved["sipp_port"]
    if args.timer_j:
        # The run's own copy of the config: the saved one stays as written.
        with open(node.config_path) as f:
            config = f.read()
        node.config_path = os.path.join(args.workdir, "voxide-run.toml")
        with open(node.config_path, "w") as f:
            f.write(config.replace("[proxy]\n", f"[proxy]\ntimer_j_seconds = {args.timer_j}\n"))
        result["timer_j_seconds"] = args.timer_j
    result["empty_rss_mib"] = saved["empty_rss_mib"]

    inf = os.path.join(args.workdir, "refresh.csv")
    total = args.rate * args.load_secs
    write_injection(inf, 0, min(total, args.subscribers), args.width)
    try:
        result["load_secs_to_ready"] = round(node.start(), 1)
        sampler = Sampler(node.process.pid)
        sampler.start()
        time.sleep(args.settle_secs)
        after_load = memory_kib(node.process.pid)
        result["after_load_rss_mib"] = mib(after_load["VmRSS"])
        result["after_load_anon_mib"] = mib(after_load["RssAnon"])
        result["start_hwm_mib"] = mib(after_load["VmHWM"])
        print(f"loaded {args.subscribers} bindings in {result['load_secs_to_ready']} s: "
              f"RSS {result['after_load_rss_mib']} MiB (anon {result['after_load_anon_mib']}), "
              f"start-up high-water mark {result['start_hwm_mib']} MiB", flush=True)

        load_start = time.time()
        outcome = sipp(args, node, "refresh", inf, total, args.rate, args.sipp_port)
        load_end = time.time()
        result["sipp"] = outcome
        peak = sampler.peak(load_start, load_end)
        result["peak_rss_mib"] = mib(peak[1])
        result["peak_anon_mib"] = mib(peak[2])
        print(f"{total} re-registrations at {args.rate}/s: {outcome}; peak RSS "
              f"{result['peak_rss_mib']} MiB (anon {result['peak_anon_mib']})", flush=True)
        marks = [m for m in (10, 30, 60, 120) if m <= args.watch_secs]
        time.sleep(max(0.0, load_end + args.watch_secs - time.time()) + 0.6)
        for mark in marks:
            sample = sampler.at(load_end + mark)
            result[f"after_{mark}s_rss_mib"] = mib(sample[1])
            result[f"after_{mark}s_anon_mib"] = mib(sample[2])
        print("after the load: " + ", ".join(
            f"{m} s {result[f'after_{m}s_rss_mib']} MiB" for m in marks), flush=True)
        sampler.stop_event.set()
        with open(os.path.join(args.workdir, "samples.jsonl"), "w") as f:
            for moment, rss, anon in sampler.samples:
                f.write(json.dumps({"t": round(moment - load_start, 1), "rss_kib": rss,
                                    "anon_kib": anon}) + "\n")
        if node.process.poll() is not None:
            raise SystemExit(f"voxide exited during the run ({node.process.returncode})")
    finally:
        node.stop()
    print(json.dumps(result), flush=True)
    with open(os.path.join(args.workdir, "results.jsonl"), "a") as f:
        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    sys.exit(main())
