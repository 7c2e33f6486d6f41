#!/usr/bin/env python3
"""etcd's v3 JSON gateway against its gRPC API, the calls the coordinator makes, side by side on one private etcd.

Issue 13 asks to choose the coordinator's transport by measurement. Both transports end in the same etcd
server; what differs is the encoding and the HTTP stack. This measures each call the coordinator makes
(a range of the group's two keys, the claim's compare-and-put transaction, a lease grant, a lease keepalive)
over both, from one long-lived client per transport in one Python process (grpcio for gRPC, one persistent
HTTP/1.1 connection for the gateway), alternating in rounds, and prints p50 and p99 in microseconds.

Usage (installs nothing itself):
    python3 -m venv /tmp/etcdvenv && /tmp/etcdvenv/bin/pip install grpcio 'protobuf==3.20.3' etcd3
    /tmp/etcdvenv/bin/python Benchmarks/etcd-transport.py [calls per round] [rounds]
Needs Debian's etcd-server (`etcd` on PATH). The etcd it starts listens on loopback, in a directory of its
own, and is stopped by its PID.
"""
import base64, http.client, json, os, shutil, signal, socket, subprocess, sys, tempfile, time

import etcd3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64(text):
    return base64.b64encode(text.encode()).decode()


def start_etcd():
    directory = tempfile.mkdtemp(prefix="etcd-transport-")
    client, peer = free_port(), free_port()
    process = subprocess.Popen(
        ["etcd", "--data-dir", directory, "--listen-client-urls", f"http://127.0.0.1:{client}",
         "--advertise-client-urls", f"http://127.0.0.1:{client}", "--listen-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-cluster", f"default=http://127.0.0.1:{peer}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", client), timeout=0.1):
                return process, directory, client
        except OSError:
            time.sleep(0.05)
    raise SystemExit("etcd did not start")


class Gateway:
    def __init__(self, port):
        self.connection = http.client.HTTPConnection("127.0.0.1", port)

    def post(self, path, body):
        self.connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = self.connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"{path}: HTTP {response.status} {data[:200]}")
        return json.loads(data)

    def grant(self):
        return self.post("/v3/lease/grant", {"TTL": "30"})["ID"]

    def keepalive(self, lease):
        self.post("/v3/lease/keepalive", {"ID": lease})

    def range(self):
        self.post("/v3/kv/range", {"key": b64("/bench/"), "range_end": b64("/bench0")})

    def txn(self, i):
        key = b64(f"/txn/gateway-{i}")
        self.post("/v3/kv/txn", {
            "compare": [{"key": key, "result": "EQUAL", "target": "MOD", "mod_revision": "0"}],
            "success": [{"request_put": {"key": key, "value": b64("{}")}}],
            "failure": [{"request_range": {"key": key}}]})


class GRPC:
    def __init__(self, port):
        self.client = etcd3.client(host="127.0.0.1", port=port)

    def grant(self):
        return self.client.lease(30)

    def keepalive(self, lease):
        lease.refresh()

    def range(self):
        list(self.client.get_prefix("/bench/"))

    def txn(self, i):
        key = f"/txn/grpc-{i}"
        self.client.transaction(compare=[self.client.transactions.mod(key) == 0],
                                success=[self.client.transactions.put(key, "{}")],
                                failure=[self.client.transactions.get(key)])


def timed(calls, body):
    samples = []
    for i in range(calls):
        start = time.perf_counter_ns()
        body(i)
        samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


def percentile(samples, p):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def main():
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    process, directory, port = start_etcd()
    try:
        transports = {"gateway": Gateway(port), "grpc": GRPC(port)}
        # The group's two keys, as the coordinator reads them (each transaction writes keys of its own).
        transports["grpc"].client.put("/bench/leader", '{"member":"alpha","incarnation":"161"}')
        transports["grpc"].client.put("/bench/state", '{"epoch":1,"inSync":[],"members":[]}')
        results = {(t, c): [] for t in transports for c in ("range", "txn", "grant", "keepalive")}
        offset = 0
        for _ in range(rounds):
            for name, t in transports.items():
                lease = t.grant()
                results[(name, "range")] += timed(calls, lambda i: t.range())
                results[(name, "txn")] += timed(calls, lambda i: t.txn(offset + i))
                results[(name, "grant")] += timed(calls // 10, lambda i: t.grant())
                results[(name, "keepalive")] += timed(calls, lambda i: t.keepalive(lease))
            offset += calls
        print(f"etcd {subprocess.run(['etcd', '--version'], capture_output=True, text=True).stdout.split()[2]}, "
              f"{calls} calls per round ({calls // 10} grants), {rounds} rounds alternating; microseconds")
        print(f"{'call':<10} {'gateway p50':>12} {'gateway p99':>12} {'grpc p50':>10} {'grpc p99':>10}")
        for call in ("range", "txn", "grant", "keepalive"):
            g, r = results[("gateway", call)], results[("grpc", call)]
            print(f"{call:<10} {percentile(g, 0.5):>12.0f} {percentile(g, 0.99):>12.0f} "
                  f"{percentile(r, 0.5):>10.0f} {percentile(r, 0.99):>10.0f}")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
