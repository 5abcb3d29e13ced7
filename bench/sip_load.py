#!/usr/bin/env python3
"""SIP load benchmark: authenticated REGISTER and authenticated calls through a SIP server.

Runs SIPp rate ladders (bench/sipp/*.xml) against either

  * voxide (`voxide up`: LB on a public UDP address + proxy/registrar behind it), provisioned
    through its REST API, or
  * Kamailio, started with a registrar/proxy config the caller names (--kamailio-cfg) and
    provisioned by a hook script (--kamailio-provision DB USERS_TXT DOMAIN),

so both systems can be measured with the same scenarios, rates and settings in one session.

For each offered rate R the step runs R * step_secs SIPp "calls" (a complete registration, or a
complete call) and records failures, retransmissions, the rate SIPp achieved and the CPU time the
server process tree used (utime + stime from /proc/<pid>/stat), giving server ms CPU per
operation. A step is "sustained" with 0 failed, retransmissions < 1 % of attempts and an
achieved rate >= 95 % of the offered one. The ladder stops at the first step that fails; with
--refine N it then bisects N times between the last sustained and the first failed rate.

All traffic stays on loopback; every SIPp run has a call count (-m) and a time limit
(-timeout). Only processes this script starts are stopped, by PID.
"""

import argparse
import base64
import csv
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SIPP_DIR = os.path.join(HERE, "sipp")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- helpers


def free_port(ip, kind=socket.SOCK_DGRAM):
    """A port free for UDP (and TCP, to keep the voxide TCP listener happy) on ip."""
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


def process_tree(root):
    """PIDs of root and all its descendants (Kamailio forks its workers)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except (OSError, IndexError):
            continue
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(pids):
    """utime + stime of the given processes (all threads included), in seconds."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            continue
    return total / CLOCK_TICKS


def box_cpu_seconds():
    """Busy CPU seconds of the whole machine (all cores) from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def udp_receive_buffer_errors():
    """Datagrams the kernel dropped because a socket's receive buffer was full (all sockets
    on the machine; loopback traffic of the benchmark dominates)."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")])


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def write_users(workdir, n_users, domain):
    """Users user0000.. with password pw<user>, plus the SIPp injection files.

    The [authentication] keyword goes in the CSV: SIPp 3.6 expands a keyword that comes from
    an injected field, but not [fieldN] nested inside [authentication]."""
    width = max(4, len(str(n_users - 1)))
    users = [f"user{i:0{width}d}" for i in range(n_users)] + ["callee"]
    with open(os.path.join(workdir, "users.txt"), "w") as f:
        for user in users:
            f.write(f"{user} pw{user}\n")

    def injection(name, names):
        path = os.path.join(workdir, name)
        with open(path, "w") as f:
            f.write("SEQUENTIAL\n")
            for user in names:
                f.write(f"{user};[authentication username={user} password=pw{user}]\n")
        return path

    return {
        "users": users,
        "callers_csv": injection("callers.csv", users[:-1]),
        "callee_csv": injection("callee.csv", ["callee"]),
    }


# ---------------------------------------------------------------- servers


class Voxide:
    """`voxide up` with a generated config on loopback ports, provisioned over REST."""

    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.api_port = free_port("127.0.0.1", socket.SOCK_STREAM)
        self.proxy_port = free_port("127.0.0.1")
        self.internal_port = free_port("127.0.0.1")
        self.ng_port = free_port("127.0.0.1")
        self.password = os.environ.get("VOXIDE_ADMIN_PASSWORD", "bench-admin-secret")
        self.process = None

    def config(self, ip, port):
        d = self.args.domain
        return (
            f'data_dir = "{os.path.join(self.workdir, "data")}"\n\n'
            f'[api]\nlisten = "127.0.0.1:{self.api_port}"\ntls = "plain"\n\n'
            f'[lb]\nudp_listen = "{ip}:{port}"\ntcp_listen = "off"\ntls_listen = "off"\n'
            f'internal_listen = "127.0.0.1:{self.internal_port}"\n'
            f'proxy = "127.0.0.1:{self.proxy_port}"\ndomains = ["{d}"]\n\n'
            f'[proxy]\nlisten = "127.0.0.1:{self.proxy_port}"\ntrusted_lb = ["127.0.0.1"]\n'
            f'domains = ["{d}"]\nmax_expires = 43200\n'
            # SIPp 3.6 answers only the first challenge and knows only MD5.
            f'digest_algorithms = ["MD5"]\n'
            # The Kamailio anchor relays no media: by default neither does voxide here
            # (--media relay puts voxide's relay in the path of every call).
            + ('media_relay = "off"\n' if self.args.media == "off" else "")
            + f'\n[media]\nng_listen = "127.0.0.1:{self.ng_port}"\n'
        )

    def start(self, ip, port):
        path = os.path.join(self.workdir, "voxide.toml")
        with open(path, "w") as f:
            f.write(self.config(ip, port))
        binary = self.args.voxide_bin
        if not os.access(binary, os.X_OK):
            raise SystemExit(f"{binary} missing: cargo build --release -p voxide")
        env = dict(os.environ, VOXIDE_ADMIN_PASSWORD=self.password,
                   RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        self.log = open(os.path.join(self.workdir, "voxide.log"), "w")
        self.process = subprocess.Popen(
            nice(self.args) + [binary, "up", "--config", path],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"voxide exited ({self.process.returncode}), see {self.log.name}")
            with open(self.log.name) as f:
                if "ready" in f.read().split():
                    return self.process.pid
            time.sleep(0.2)
        raise SystemExit(f"voxide not ready after 60 s, see {self.log.name}")

    def request(self, path, body):
        token = base64.b64encode(f"administrator:{self.password}".encode()).decode()
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

    def provision(self, users):
        d = self.args.domain
        self.request("/api/domains/", {"domain": d})
        customer = self.request("/api/customers/", {"name": f"bench customer of {d}"})
        for i, user in enumerate(users):
            self.request("/api/subscribers/", {
                "customer_id": customer, "domain": d, "username": user,
                "password": f"pw{user}",
                "primary_number": {"cc": "43", "ac": "99", "sn": f"{100000 + i}"}})

    def stop(self):
        stop_process(self.process)


class Kamailio:
    """Kamailio with a registrar/proxy config taking DBURL, SIPDOMAIN and CTLSOCK defines."""

    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.process = None
        if not args.kamailio_cfg or not args.kamailio_provision:
            raise SystemExit("--server kamailio needs --kamailio-cfg and --kamailio-provision")

    def provision(self, users):
        pass  # done before the start, the hook writes the SQLite file Kamailio opens

    def start(self, ip, port):
        db = os.path.join(self.workdir, "subscriber.db")
        subprocess.run([self.args.kamailio_provision, db,
                        os.path.join(self.workdir, "users.txt"), self.args.domain], check=True)
        self.log = open(os.path.join(self.workdir, "kamailio.log"), "w")
        self.process = subprocess.Popen(
            nice(self.args) + [
                "kamailio", "-f", self.args.kamailio_cfg, "-DD", "-E",
                "-m", "1024", "-M", "16", "-n", str(self.args.kamailio_children),
                "-l", f"udp:{ip}:{port}",
                "-A", f'DBURL="sqlite://{db}"', "-A", f'SIPDOMAIN="{self.args.domain}"',
                "-A", f'CTLSOCK="unix:{os.path.join(self.workdir, "kamailio_ctl")}"'],
            stdout=self.log, stderr=subprocess.STDOUT)
        time.sleep(3)
        if self.process.poll() is not None:
            raise SystemExit(f"kamailio exited, see {self.log.name}")
        return self.process.pid

    def stop(self):
        stop_process(self.process)


def stop_process(process):
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def nice(args):
    return ["nice", "-n", str(args.nice)] if args.nice else []


# ---------------------------------------------------------------- SIPp


def read_stat(path):
    """Rows of a SIPp -trace_stat CSV (';' separated, header first)."""
    try:
        with open(path) as f:
            return list(csv.DictReader(f, delimiter=";"))
    except OSError:
        return []


def number(row, column):
    try:
        return int(float(row.get(column, "0") or 0))
    except ValueError:
        return 0


def seconds(value):
    """SIPp's hh:mm:ss:micro(seconds) time columns."""
    try:
        h, m, s, frac = value.split(":")
        return int(h) * 3600 + int(m) * 60 + int(s) + int(frac) / 10 ** len(frac)
    except (AttributeError, ValueError):
        return 0.0


def sipp(args, name, scenario, target, local_port, extra, total, rate, timeout_s):
    """Run one SIPp UAC to completion; returns (exit code, stat rows)."""
    raw = os.path.join(args.workdir_now, "raw")
    stat = os.path.join(raw, f"{name}.stat.csv")
    command = nice(args) + [
        "sipp", target, "-sf", os.path.join(SIPP_DIR, scenario),
        "-i", args.ip, "-p", str(local_port), "-m", str(total), "-r", str(rate), "-rp", "1000",
        "-l", str(min(max(1000, rate * 4), 15000)), "-nostdin", "-timeout", f"{timeout_s}s",
        "-timeout_error", "-max_recv_loops", "10000", "-max_sched_loops", "10000",
        "-trace_stat", "-stf", stat, "-fd", "1",
        "-trace_err", "-error_file", os.path.join(raw, f"{name}.errors.log"),
        "-key", "domain", args.domain] + extra
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(os.path.join(raw, f"{name}.out"), "w") as out:
        code = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    args.last_sipp_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return code, read_stat(stat)


def epoch(value):
    """The epoch seconds SIPp puts last in its StartTime/CurrentTime columns."""
    try:
        return float(value.split()[-1])
    except (AttributeError, IndexError, ValueError):
        return None


def achieved_rate(rows, total):
    """Call-creation rate SIPp reached: calls / time until the last call was created, the
    moment interpolated between the 1-s stat rows, so a generator that fell behind shows."""
    previous_time, previous_created = 0.0, 0
    for row in rows:
        start, now = epoch(row.get("StartTime")), epoch(row.get("CurrentTime"))
        created = number(row, "TotalCallCreated")
        if start is None or now is None:
            continue
        elapsed = now - start
        if created >= total and created > previous_created:
            done = previous_time + (total - previous_created) / (created - previous_created) * (
                elapsed - previous_time)
            return total / done if done > 0 else 0.0
        previous_time, previous_created = elapsed, created
    return 0.0


def p99_bucket(row):
    """Upper edge of SIPp's response-time histogram bucket holding the 99th percentile."""
    buckets = [(column.split("_", 1)[1], number(row, column)) for column in row
               if column and column.startswith("ResponseTimeRepartition1_")]
    count = sum(n for _, n in buckets)
    seen = 0
    for label, n in buckets:
        seen += n
        if count and seen >= 0.99 * count:
            return label
    return "-"


def run_step(args, server_pid, scenario, rate, uas):
    """One ladder step; returns the measured figures."""
    total = rate * args.step_secs
    name = f"{scenario}-{rate}-{int(time.time())}"
    if scenario == "reg":
        # The same port every step: each user keeps one binding (same Contact URI, RFC 3261
        # §10.3 step 7 replaces it) and the Contact equals the source address (no NAT case).
        port = args.register_port
        extra = ["-inf", args.files["callers_csv"], "-auth_uri", args.domain,
                 "-key", "contact", f"{args.ip}:{port}", "-key", "expires", "3600"]
        xml = "register_auth.xml"
    else:
        extra = ["-inf", args.files["callers_csv"], "-auth_uri", f"callee@{args.domain}",
                 "-key", "callee", "callee", "-d", str(args.hold_ms), "-pause_msg_ign"]
        xml = "call_caller.xml"
        port = free_port(args.ip)
    tree = process_tree(server_pid)
    uas_before = read_stat(uas["stat"])[-1:] if uas else []
    uas_pids = [uas["process"].pid] if uas else []
    server0, box0, wall0 = cpu_seconds(tree), box_cpu_seconds(), time.time()
    uas0 = cpu_seconds(uas_pids)
    drops0 = udp_receive_buffer_errors()
    code, rows = sipp(args, name, xml, args.target, port, extra, total, rate,
                      args.step_secs + 60 + args.hold_ms // 1000)
    wall = time.time() - wall0
    tree = process_tree(server_pid)
    server_s = cpu_seconds(tree) - server0
    box_s = box_cpu_seconds() - box0
    drops = udp_receive_buffer_errors() - drops0
    generator_s = args.last_sipp_cpu + cpu_seconds(uas_pids) - uas0
    last = rows[-1] if rows else {}
    success = number(last, "SuccessfulCall(C)")
    failed = number(last, "FailedCall(C)")
    created = number(last, "TotalCallCreated")
    retrans = number(last, "Retransmissions(C)")
    achieved = achieved_rate(rows, total)
    uas_failed = uas_retrans = 0
    if uas:
        time.sleep(1.2)  # one more UAS stat row
        after = read_stat(uas["stat"])[-1:]
        if after:
            base = uas_before[0] if uas_before else {}
            uas_failed = number(after[0], "FailedCall(C)") - number(base, "FailedCall(C)")
            uas_retrans = (number(after[0], "Retransmissions(C)")
                           - number(base, "Retransmissions(C)"))
    unfinished = total - success - failed
    failed_all = failed + unfinished + uas_failed
    retrans_all = retrans + uas_retrans
    # Process CPU times are exact (scheduler runtime); /proc/stat is sampled per tick, so
    # "box" is only a noise indicator: well above server + gen means another job was busy.
    result = {
        "server": args.server, "scenario": scenario, "rate": rate, "attempted": total,
        "success": success, "failed": failed_all, "retrans": retrans_all,
        "achieved": round(achieved, 1), "rt1_avg_ms": round(seconds(last.get("ResponseTime1(C)")) * 1000, 2),
        "rt1_p99_ms": p99_bucket(last),
        "wall_s": round(wall, 1), "server_cores": round(server_s / wall, 2),
        "server_ms_per_op": round(server_s * 1000 / success, 4) if success else None,
        "gen_cores": round(generator_s / wall, 2), "box_cores": round(box_s / wall, 2),
        "server_rss_mib": round(rss_kib(tree) / 1024, 1), "sipp_exit": code, "udp_drops": drops,
    }
    result["sustained"] = (failed_all == 0 and retrans_all < 0.01 * total
                           and achieved >= 0.95 * rate)
    with open(args.jsonl, "a") as f:
        f.write(json.dumps(result) + "\n")
    print(format_row(result), flush=True)
    return result


HEADER = (f"{'server':8} {'scen':4} {'rate/s':>7} {'attempted':>9} {'success':>9} {'failed':>7} "
          f"{'retrans':>8} {'achieved/s':>10} {'RT1avg ms':>9} {'p99':>6} {'srv cores':>9} "
          f"{'srv ms/op':>9} {'gen cores':>9} {'box cores':>9} {'srv RSS MiB':>11} {'udp drops':>9} ok")


def format_row(r):
    ms = f"{r['server_ms_per_op']:.4f}" if r["server_ms_per_op"] is not None else "-"
    return (f"{r['server']:8} {r['scenario']:4} {r['rate']:>7} {r['attempted']:>9} "
            f"{r['success']:>9} {r['failed']:>7} {r['retrans']:>8} {r['achieved']:>10} "
            f"{r['rt1_avg_ms']:>9} {r['rt1_p99_ms']:>6} {r['server_cores']:>9} {ms:>9} {r['gen_cores']:>9} {r['box_cores']:>9} "
            f"{r['server_rss_mib']:>11} {r.get('udp_drops', '-'):>9} {'yes' if r['sustained'] else 'NO'}")


def ladder(args, server_pid, scenario, rates, uas=None):
    print(f"### {scenario} ladder against {args.server} {args.target}: {rates}", flush=True)
    print(HEADER, flush=True)
    best, first_fail, results = None, None, []
    for rate in rates:
        result = run_step(args, server_pid, scenario, rate, uas)
        results.append(result)
        if result["sustained"]:
            best = result
        else:
            first_fail = rate
            break
        time.sleep(args.pause_secs)
    low = best["rate"] if best else 0
    for _ in range(args.refine):
        if first_fail is None or first_fail - low <= max(100, low // 20):
            break
        mid = (low + first_fail) // 2 // 100 * 100 or (low + first_fail) // 2
        time.sleep(args.pause_secs)
        result = run_step(args, server_pid, scenario, mid, uas)
        results.append(result)
        if result["sustained"]:
            low, best = mid, result
        else:
            first_fail = mid
    if best:
        print(f"MAX SUSTAINED {scenario} ({args.server}): {best['rate']}/s, "
              f"server {best['server_ms_per_op']} ms CPU per operation, "
              f"{best['server_cores']} cores", flush=True)
    else:
        print(f"MAX SUSTAINED {scenario} ({args.server}): none of {rates}", flush=True)
    return best


def start_callee(args, server_pid):
    """Register the callee from the UAS port itself (so Contact = source address, no NAT
    handling kicks in), then start the SIPp UAS there."""
    uas_port = free_port(args.ip)
    code, rows = sipp(args, "callee-register", "register_auth.xml", args.target, uas_port,
                      ["-inf", args.files["callee_csv"], "-auth_uri", args.domain,
                       "-key", "contact", f"{args.ip}:{uas_port}", "-key", "expires", "43200"],
                      1, 1, 20)
    if code != 0 or not rows or number(rows[-1], "SuccessfulCall(C)") != 1:
        raise SystemExit(f"callee registration failed (sipp exit {code}), see {args.workdir_now}/raw")
    stat = os.path.join(args.workdir_now, "raw", "uas.stat.csv")
    process = subprocess.Popen(
        nice(args) + ["sipp", "-sf", os.path.join(SIPP_DIR, "call_callee.xml"),
                      "-i", args.ip, "-p", str(uas_port), "-nostdin", "-pause_msg_ign",
                      "-max_recv_loops", "10000", "-trace_stat", "-stf", stat, "-fd", "1",
                      "-trace_err", "-error_file",
                      os.path.join(args.workdir_now, "raw", "uas.errors.log")],
        stdout=open(os.path.join(args.workdir_now, "raw", "uas.out"), "w"),
        stderr=subprocess.STDOUT)
    time.sleep(1.5)
    if process.poll() is not None:
        raise SystemExit("SIPp UAS did not start")
    return {"process": process, "stat": stat}


def parse_rates(text):
    return [int(v) for v in text.split(",") if v.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", choices=["voxide", "kamailio"], default="voxide")
    ap.add_argument("--ip", default=os.environ.get("BENCH_IP", "127.0.0.62"),
                    help="private loopback address for the server's public UDP and SIPp")
    ap.add_argument("--port", type=int, default=0, help="server SIP port (0: a free one)")
    ap.add_argument("--domain", default="bench.local")
    ap.add_argument("--media", choices=["off", "relay"], default=os.environ.get("MEDIA", "off"),
                    help="voxide only: put its media relay in the path of calls (default off, "
                         "like the Kamailio anchor config)")
    ap.add_argument("--users", type=int, default=int(os.environ.get("N_USERS", "200")))
    ap.add_argument("--scenarios", default=os.environ.get("SCENARIOS", "reg,call"))
    ap.add_argument("--reg-rates", default=os.environ.get("REG_RATES", "1000,2000,4000,8000,12000,17000"))
    ap.add_argument("--call-rates", default=os.environ.get("CALL_RATES", "200,500,1000,2000,3000"))
    ap.add_argument("--step-secs", type=int, default=int(os.environ.get("STEP_SECS", "10")))
    ap.add_argument("--hold-ms", type=int, default=int(os.environ.get("HOLD_MS", "1000")))
    ap.add_argument("--refine", type=int, default=int(os.environ.get("REFINE", "1")))
    ap.add_argument("--pause-secs", type=float, default=2.0, help="quiet time between steps")
    ap.add_argument("--nice", type=int, default=int(os.environ.get("NICE", "0")))
    ap.add_argument("--workdir", default=os.environ.get("WORKDIR", "/tmp/voxide-bench"))
    ap.add_argument("--voxide-bin", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target")), "release", "voxide"))
    ap.add_argument("--kamailio-cfg", help="Kamailio registrar/proxy config (--server kamailio)")
    ap.add_argument("--kamailio-provision", help="hook: PROG DB USERS_TXT DOMAIN")
    ap.add_argument("--kamailio-children", type=int, default=2)
    args = ap.parse_args()

    if not args.ip.startswith("127."):
        raise SystemExit("--ip must be a 127.x loopback address")
    if not shutil.which("sipp"):
        raise SystemExit("sipp missing: apt-get install -y sip-tester")
    # SIPp wants one descriptor per open call (-l).
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    args.workdir_now = os.path.join(args.workdir, args.server)
    shutil.rmtree(args.workdir_now, ignore_errors=True)
    os.makedirs(os.path.join(args.workdir_now, "raw"))
    args.jsonl = os.path.join(args.workdir_now, "results.jsonl")
    args.files = write_users(args.workdir_now, args.users, args.domain)
    port = args.port or free_port(args.ip)
    args.target = f"{args.ip}:{port}"
    args.register_port = free_port(args.ip)
    args.last_sipp_cpu = 0.0

    server = Voxide(args, args.workdir_now) if args.server == "voxide" else Kamailio(args, args.workdir_now)
    uas = None
    try:
        pid = server.start(args.ip, port)
        started = time.time()
        server.provision(args.files["users"])
        print(f"{args.server} pid {pid} on udp {args.target}; {args.users} users + callee "
              f"provisioned in {time.time() - started:.1f} s; {args.step_secs} s per step, "
              f"nice {args.nice}", flush=True)
        best = {}
        scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
        if "reg" in scenarios:
            best["reg"] = ladder(args, pid, "reg", parse_rates(args.reg_rates))
        if "call" in scenarios:
            uas = start_callee(args, pid)
            best["call"] = ladder(args, pid, "call", parse_rates(args.call_rates), uas)
        if server.process.poll() is not None:
            print(f"!! {args.server} exited during the run with {server.process.returncode}")
        with open(os.path.join(args.workdir_now, "best.json"), "w") as f:
            json.dump(best, f, indent=1)
    finally:
        if uas:
            stop_process(uas["process"])
        server.stop()
    print(f"results: {args.jsonl}")


if __name__ == "__main__":
    sys.exit(main())
