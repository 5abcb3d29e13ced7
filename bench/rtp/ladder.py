#!/usr/bin/env python3
"""Media relay ladder: rtpengine (userspace) and voxide's relay in the same run.

    python3 bench/rtp/ladder.py --streams 1000,2000,3000 --rounds 3 --secs 10

For every round, stream count and relay (interleaved, so both see the same background load):
start the relay fresh, set up streams/2 calls over the ng protocol (offer from side A, answer
from side B, two unidirectional streams per call), run bench/rtp/rtpload (172-byte packets,
50 pps per stream), read the relay's CPU time (utime + stime of the whole process, all threads,
from /proc/<pid>/stat) around the load, delete the calls, stop the relay. One JSON line per step
goes to --jsonl, a median table to stdout.

Relays (--relays): `rtpengine` = Debian's rtpengine-daemon with --table=-1 (userspace only) and
--num-threads 2; `voxide` = the media relay alone (`cargo build --release -p media --example
media_relay`), default I/O mode; `voxide-simple` = its one-syscall-per-packet mode; `voxide-nc` =
batched without the coalescing pause; `voxide-user` = the relay with kernel forwarding off;
`direct` = no relay at all (the endpoints' own cost, for box-level figures); `voxide-c<N>` = a
coalescing pause of N µs; `voxide-base` = another build of the relay (--baseline-relay, e.g.
before a change), default mode. Loopback addresses only; every process this script starts
is stopped by its pid.
"""
import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def bencode(value):
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in sorted(value.items())) + b"e"
    raise TypeError(type(value))


def bdecode(data, at=0):
    kind = data[at:at + 1]
    if kind == b"i":
        end = data.index(b"e", at)
        return int(data[at + 1:end]), end + 1
    if kind in (b"l", b"d"):
        at += 1
        items = []
        while data[at:at + 1] != b"e":
            item, at = bdecode(data, at)
            items.append(item)
        if kind == b"l":
            return items, at + 1
        return {items[i].decode(): items[i + 1] for i in range(0, len(items), 2)}, at + 1
    colon = data.index(b":", at)
    length = int(data[at:colon])
    return data[colon + 1:colon + 1 + length], colon + 1 + length


class Ng:
    """ng client: cookies unique per process, three tries per request."""

    def __init__(self, address):
        self.address = address
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.settimeout(1.0)
        self.prefix = b"%d_%d" % (os.getpid(), int(time.time() * 1000))
        self.count = 0

    def request(self, message):
        self.count += 1
        cookie = b"%s_%d" % (self.prefix, self.count)
        datagram = cookie + b" " + bencode(message)
        for _ in range(3):
            self.socket.sendto(datagram, self.address)
            try:
                while True:
                    reply, _ = self.socket.recvfrom(65535)
                    head, _, body = reply.partition(b" ")
                    if head == cookie:
                        return bdecode(body)[0]
            except socket.timeout:
                continue
        raise RuntimeError("no ng reply to %s" % message.get("command"))


def free_port(ip):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((ip, 0))
        return probe.getsockname()[1]


def relay_command(kind, ip, ng_port, args):
    if kind == "rtpengine":
        return ["rtpengine", "--config-file=none", "--table=-1", "--interface=%s" % ip,
                "--listen-ng=%s:%d" % (ip, ng_port), "--port-min=12000", "--port-max=32767",
                "--num-threads=%d" % args.rtpengine_threads, "--foreground", "--log-stderr",
                "--log-level=4", "--timeout=60", "--delete-delay=0"]
    binary = args.baseline_relay if kind == "voxide-base" else args.voxide_relay
    command = [binary, "--ng", "%s:%d" % (ip, ng_port), "--ip", ip,
               "--port-min", "12000", "--port-max", "32767", "--delete-delay", "0"]
    if kind == "voxide-simple":
        command.append("--simple")
    elif kind == "voxide-batched":
        command += ["--batched", "--no-kernel"]
    elif kind == "voxide-user":
        command.append("--no-kernel")
    elif kind == "voxide-nc":
        command += ["--coalesce-us", "0"]
    elif kind.startswith("voxide-c"):
        command += ["--coalesce-us", kind[len("voxide-c"):]]
    return command + args.voxide_args.split()


def process_cpu_seconds(pid):
    """CPU time of every thread of `pid`: the scheduler's nanosecond run time
    (/proc/<pid>/task/*/schedstat), finer than utime + stime's clock ticks; utime + stime of
    /proc/<pid>/stat when schedstat is not available."""
    total = 0
    try:
        for task in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/schedstat" % (pid, task)) as schedstat:
                total += int(schedstat.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        pass
    with open("/proc/%d/stat" % pid) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (stat field 3): utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def box_busy_seconds():
    """CPU time the whole box spent busy (all CPUs: user, system, interrupts, softirq), from
    /proc/stat. Work the kernel does outside the relay process (softirq delivery, in-kernel
    forwarding) shows up here and not in the relay's own CPU time."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def sdp(ip, port, session):
    return ("v=0\r\no=- %d 1 IN IP4 %s\r\ns=bench\r\nc=IN IP4 %s\r\nt=0 0\r\n"
            "m=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n" % (session, ip, ip, port))


def media_port(reply):
    if reply.get("result") != b"ok":
        raise RuntimeError("relay refused: %r" % reply)
    return int(re.search(rb"m=audio (\d+) ", reply["sdp"]).group(1))


def run_step(kind, streams, args, workdir):
    ip = args.ip
    if kind == "direct":
        return run_direct(streams, args, workdir)
    ng_port = free_port(ip)
    log = open(os.path.join(workdir, "%s-%d.log" % (kind, streams)), "w")
    relay = subprocess.Popen(relay_command(kind, ip, ng_port, args), stdout=log, stderr=log)
    try:
        ng = Ng((ip, ng_port))
        for _ in range(50):
            try:
                if ng.request({"command": "ping"}).get("result") == b"pong":
                    break
            except RuntimeError:
                pass
            if relay.poll() is not None:
                raise RuntimeError("%s exited; see %s" % (kind, log.name))
        a_port, b_port = free_port(ip), free_port(ip)
        lines = []
        calls = streams // 2
        for call in range(calls):
            call_id = "bench-%d" % call
            for_b = media_port(ng.request({"command": "offer", "call-id": call_id, "from-tag": "a",
                                           "sdp": sdp(ip, a_port, call)}))
            for_a = media_port(ng.request({"command": "answer", "call-id": call_id, "from-tag": "a",
                                           "to-tag": "b", "sdp": sdp(ip, b_port, call)}))
            lines.append("a %s:%d\nb %s:%d\n" % (ip, for_a, ip, for_b))
        streams_file = os.path.join(workdir, "streams-%s-%d.txt" % (kind, streams))
        with open(streams_file, "w") as out:
            out.writelines(lines)
        time.sleep(0.5)
        perf = None
        if args.perf:
            perf = subprocess.Popen(
                ["perf", "record", "-q", "-g", "-p", str(relay.pid), "-o",
                 os.path.join(workdir, "perf-%s-%d.data" % (kind, streams)),
                 "--", "sleep", str(args.secs)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu_before, wall_before = process_cpu_seconds(relay.pid), time.monotonic()
        box_before = box_busy_seconds()
        load = run_load(a_port, b_port, streams_file, args)
        box = box_busy_seconds() - box_before
        cpu = process_cpu_seconds(relay.pid) - cpu_before
        if perf is not None:
            perf.wait()
        wall = time.monotonic() - wall_before
        figures = dict(item.split("=") for item in load.stdout.split())
        for call in range(calls):
            ng.request({"command": "delete", "call-id": "bench-%d" % call, "from-tag": "a"})
    finally:
        relay.send_signal(signal.SIGTERM)
        try:
            relay.wait(timeout=10)
        except subprocess.TimeoutExpired:
            relay.kill()
            relay.wait()
        log.close()
    return step_figures(kind, streams, figures, cpu, wall, box)


def run_load(a_port, b_port, streams_file, args):
    return subprocess.run(
        [os.path.join(args.build_dir, "rtpload"), "-a", "%s:%d" % (args.ip, a_port),
         "-b", "%s:%d" % (args.ip, b_port), "-f", streams_file, "-r", str(args.pps),
         "-s", str(args.size), "-t", str(args.secs)],
        capture_output=True, text=True, timeout=args.secs + 30, check=True)


def run_direct(streams, args, workdir):
    """The same load with no relay: side a sends straight to side b's socket and back. Its
    box CPU per packet is what the endpoints cost; a relay's box figure minus this one is
    what relaying costs, wherever in the kernel or user space it is spent."""
    a_port, b_port = free_port(args.ip), free_port(args.ip)
    streams_file = os.path.join(workdir, "streams-direct-%d.txt" % streams)
    with open(streams_file, "w") as out:
        for _ in range(streams // 2):
            out.write("a %s:%d\nb %s:%d\n" % (args.ip, b_port, args.ip, a_port))
    wall_before, box_before = time.monotonic(), box_busy_seconds()
    load = run_load(a_port, b_port, streams_file, args)
    box = box_busy_seconds() - box_before
    wall = time.monotonic() - wall_before
    figures = dict(item.split("=") for item in load.stdout.split())
    return step_figures("direct", streams, figures, 0.0, wall, box)


def step_figures(kind, streams, figures, cpu, wall, box):
    received = int(figures["received"])
    step = {
        "relay": kind, "streams": streams, "offered_pps": float(figures["offered_pps"]),
        "received_pps": float(figures["received_pps"]),
        "loss_percent": float(figures["loss_percent"]),
        "lat_p50_us": int(figures["lat_p50_us"]), "lat_p99_us": int(figures["lat_p99_us"]),
        "relay_cores": cpu / wall, "cpu_us_per_packet": 1e6 * cpu / received if received else None,
        "generator_cores": float(figures["generator_cores"]),
        "box_cores": box / wall,
        "box_us_per_packet": 1e6 * box / received if received else None,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    step["ok"] = (step["loss_percent"] < 0.1
                  and float(figures["sent_pps"]) >= 0.97 * step["offered_pps"])
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--relays", default="rtpengine,voxide")
    parser.add_argument("--streams", default="1000,2000,3000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pps", type=int, default=50)
    parser.add_argument("--secs", type=int, default=10)
    parser.add_argument("--size", type=int, default=172)
    parser.add_argument("--ip", default=os.environ.get("BENCH_IP", "127.0.0.63"))
    parser.add_argument("--rtpengine-threads", type=int, default=2)
    parser.add_argument("--voxide-relay",
                        default=os.path.join(ROOT, "target/release/examples/media_relay"))
    parser.add_argument("--baseline-relay", help="media_relay binary for `voxide-base`")
    parser.add_argument("--voxide-args", default="", help="extra media_relay flags")
    parser.add_argument("--perf", action="store_true",
                        help="perf record -g each relay during its load (perf-<relay>-<streams>.data in the build dir; inflates its CPU)")
    parser.add_argument("--build-dir", default="/tmp/voxide-bench-rtp")
    parser.add_argument("--jsonl", default="/tmp/voxide-bench-rtp/results.jsonl")
    args = parser.parse_args()
    if not args.ip.startswith("127."):
        sys.exit("--ip must be a loopback address (127.x)")
    os.makedirs(args.build_dir, exist_ok=True)
    subprocess.run(["cc", "-O2", "-Wall", "-pthread", "-o", os.path.join(args.build_dir, "rtpload"),
                    os.path.join(HERE, "rtpload.c")], check=True)
    results = []
    with open(args.jsonl, "a") as jsonl:
        for _ in range(args.rounds):
            for streams in [int(s) for s in args.streams.split(",")]:
                for kind in args.relays.split(","):
                    step = run_step(kind, streams, args, args.build_dir)
                    results.append(step)
                    jsonl.write(json.dumps(step) + "\n")
                    jsonl.flush()
                    print("%-14s %6d streams  %8.0f pps  loss %.3f %%  p99 %6d us  %.2f cores  "
                          "%.2f us/pkt  gen %.2f  box %.2f us/pkt  %s" % (
                              kind, streams, step["received_pps"], step["loss_percent"],
                              step["lat_p99_us"], step["relay_cores"],
                              step["cpu_us_per_packet"] or 0, step["generator_cores"],
                              step["box_us_per_packet"] or 0,
                              "ok" if step["ok"] else "NO"), flush=True)
    print("\nmedians over %d rounds (µs CPU per relayed packet: the relay process; the box; "
          "the box minus the direct run = the cost of relaying; loss %%)" % args.rounds)
    kinds = args.relays.split(",")
    reference = next(k for k in kinds if k != "direct")
    for streams in [int(s) for s in args.streams.split(",")]:
        by_kind = {kind: [r for r in results if r["relay"] == kind and r["streams"] == streams]
                   for kind in kinds}
        medians = {kind: statistics.median(r["cpu_us_per_packet"] for r in steps)
                   for kind, steps in by_kind.items()}
        boxes = {kind: statistics.median(r["box_us_per_packet"] for r in steps)
                 for kind, steps in by_kind.items()}
        floor = boxes.get("direct")
        for kind, steps in by_kind.items():
            loss = statistics.median(r["loss_percent"] for r in steps)
            ok = sum(r["ok"] for r in steps)
            line = "%-14s %6d streams  relay %.2f  box %.2f" % (kind, streams, medians[kind], boxes[kind])
            if floor is not None and kind != "direct":
                relaying = boxes[kind] - floor
                reference_relaying = boxes[reference] - floor
                line += "  relaying %.2f (%.2f of %s)" % (
                    relaying, relaying / reference_relaying if reference_relaying else 0, reference)
            if kind != "direct" and medians[reference]:
                line += "  relay ratio %.2f" % (medians[kind] / medians[reference])
            print(line + "  loss %.3f %%  ok %d/%d" % (loss, ok, len(steps)), flush=True)


if __name__ == "__main__":
    main()
