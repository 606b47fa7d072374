"""Istio's networking kinds on `osprey up`: the bookinfo Gateway and
VirtualService applied as Istio's docs give them, productpage declared as a
local endpoint with a ServiceEntry; weighted destinations and fault
percentages within 1 pp over 2,000 requests; retries with perTryTimeout
against an endpoint that fails every other call; header changes, rewrite,
redirect and method and query matches; a VirtualService over Knative
Services; malformed resources refused with the field named while nothing
applied changes; DestinationRules: subsets by endpoint labels, round robin,
consistent hashing, connection-pool limits, and outlier detection ejecting a
replica that answers 503 and bringing it back; corsPolicy preflights and
answers.
"""

import concurrent.futures
import json
import socket
import ssl
import subprocess
import sys
import time

import pytest
import requests

import harness
from platform_harness import Platform

# A local HTTP server: answers "{name} {path}" and echoes what the gateway
# sent (x-seen-host, x-seen-* request headers) in its answer headers; on
# /flaky every other call answers 503; on /slow every other call takes 2 s;
# on /sleep every call takes 1 s. /_sick/on makes it answer 503 to
# everything until /_sick/off; /_calls counts the other calls.
SERVER = """
import http.server, json, os, sys, threading, time
name, port = sys.argv[1], int(sys.argv[2])
lock = threading.Lock()
calls = {"flaky": 0, "slow": 0, "all": 0, "sick": False}
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # head and body leave at once
    def answer(self):
        path = self.path.split("?")[0]
        status = 200
        if path.startswith("/_"):
            with lock:
                if path == "/_sick/on":
                    calls["sick"] = True
                if path == "/_sick/off":
                    calls["sick"] = False
                body = json.dumps({"calls": calls["all"]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        with lock:
            calls["all"] += 1
            if calls["sick"]:
                status = 503
        if path.endswith("/sleep"):
            time.sleep(1)
        for kind in ("flaky", "slow"):
            if path.endswith("/" + kind):
                with lock:
                    calls[kind] += 1
                    odd = calls[kind] % 2 == 1
                if odd and kind == "flaky":
                    status = 503
                if odd and kind == "slow":
                    time.sleep(2)
        body = json.dumps({"name": name, "path": self.path, "method": self.command,
                           "host": self.headers.get("Host"),
                           "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-internal", "secret")
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = do_DELETE = answer
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""

BOOKINFO = """apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: bookinfo-gateway
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - "*"
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: bookinfo
spec:
  hosts:
  - "*"
  gateways:
  - bookinfo-gateway
  http:
  - match:
    - uri:
        exact: /productpage
    - uri:
        prefix: /static
    - uri:
        exact: /login
    - uri:
        exact: /logout
    - uri:
        prefix: /api/v1/products
    route:
    - destination:
        host: productpage
        port:
          number: 9080
"""


def service_entry(name, port, hosts=None):
    hosts = hosts or [f"{name}.default.svc.cluster.local"]
    return f"""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: {name}
spec:
  hosts: {json.dumps(hosts)}
  location: MESH_INTERNAL
  ports:
  - number: 9080
    name: http
    protocol: HTTP
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports:
      http: {port}
"""


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    home = tmp_path_factory.mktemp("istio-servers")
    script = home / "server.py"
    script.write_text(SERVER)
    names = ["productpage", "reviews-v1", "reviews-v2", "ratings", "pool-a", "pool-b", "pool-c"]
    ports = harness.free_ports(len(names))
    procs = [subprocess.Popen([sys.executable, str(script), n, str(p)]) for n, p in zip(names, ports)]

    def up(port):
        try:
            return requests.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False
    for port in ports:
        harness.wait_until(lambda: up(port), 20, f"test server on {port}")
    yield dict(zip(names, ports))
    for p in procs:
        p.kill()
        p.wait()


@pytest.fixture(scope="module")
def platform(osprey_bin, tmp_path_factory, servers):
    p = Platform(osprey_bin, tmp_path_factory.mktemp("istio") / "home").start()
    for name, port in servers.items():
        p.apply_text(service_entry(name, port), wait=False)
    yield p
    p.stop_everything()


def call(platform, path, host="bookinfo.example.com", method="GET", headers=None,
         session=requests):
    h = {"Host": host, **(headers or {})}
    return session.request(method, f"{platform.gateway}{path}", headers=h, timeout=30,
                           allow_redirects=False)


def route_ready(platform, path, host="bookinfo.example.com", name=None):
    def ok():
        r = call(platform, path, host)
        return r.status_code == 200 and (name is None or r.json()["name"] == name)
    harness.wait_until(ok, 20, f"route for {host}{path}")


def test_bookinfo_routes_its_paths_and_nothing_else(platform):
    out = platform.apply_text(BOOKINFO, wait=False).stdout
    assert "gateway.networking.istio.io/bookinfo-gateway created" in out, out
    assert "virtualservice.networking.istio.io/bookinfo created" in out, out
    route_ready(platform, "/productpage")
    for path in ("/productpage", "/login", "/static/style.css", "/api/v1/products/1"):
        r = call(platform, path, host="whatever.example.org")
        assert r.status_code == 200, (path, r.text)
        assert r.json()["name"] == "productpage" and r.json()["path"] == path
    for path in ("/", "/productpage/x", "/admin"):
        assert call(platform, path).status_code == 404, path
    rows = [l.split() for l in platform.cli("get", "vs").stdout.splitlines()]
    assert rows[0] == ["NAME", "GATEWAYS", "HOSTS", "AGE"]
    assert rows[1][:3] == ["bookinfo", '["bookinfo-gateway"]', '["*"]'], rows
    assert [l.split()[0] for l in platform.cli("get", "gw").stdout.splitlines()] == [
        "NAME", "bookinfo-gateway"]


def test_weights_and_fault_percentages_hold_within_a_point(platform):
    platform.apply_text("""apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews.example.com]
  http:
  - match: [{uri: {prefix: /faulty}}]
    fault:
      abort: {httpStatus: 418, percentage: {value: 25}}
    route: [{destination: {host: ratings, port: {number: 9080}}}]
  - route:
    - {destination: {host: reviews-v1, port: {number: 9080}}, weight: 70}
    - {destination: {host: reviews-v2, port: {number: 9080}}, weight: 30}
""", wait=False)
    route_ready(platform, "/", host="reviews.example.com")
    s = requests.Session()
    names = [call(platform, "/", "reviews.example.com", session=s).json()["name"]
             for _ in range(2000)]
    assert abs(names.count("reviews-v2") / 2000 - 0.30) <= 0.01, names.count("reviews-v2")
    assert names.count("reviews-v1") + names.count("reviews-v2") == 2000
    codes = [call(platform, "/faulty", "reviews.example.com", session=s).status_code
             for _ in range(2000)]
    assert abs(codes.count(418) / 2000 - 0.25) <= 0.01, codes.count(418)
    assert codes.count(418) + codes.count(200) == 2000


def test_retries_with_per_try_timeout(platform):
    platform.apply_text("""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings.example.com]
  http:
  - match: [{uri: {prefix: /retry}}]
    route: [{destination: {host: ratings, port: {number: 9080}}}]
    retries: {attempts: 2, perTryTimeout: 500ms, retryOn: "5xx"}
  - match: [{uri: {prefix: /plain}}]
    route: [{destination: {host: ratings, port: {number: 9080}}}]
    retries: {attempts: 0}
  - route: [{destination: {host: ratings, port: {number: 9080}}}]
""", wait=False)
    route_ready(platform, "/", host="ratings.example.com")
    # Without retries every other call fails; with them every call succeeds.
    plain = [call(platform, "/plain/flaky", "ratings.example.com").status_code for _ in range(10)]
    assert plain.count(503) == 5, plain
    # Istio's default policy (no retries block) retries an answer of 503.
    default = [call(platform, "/default/flaky", "ratings.example.com").status_code
               for _ in range(10)]
    assert default == [200] * 10, default
    retried = [call(platform, "/retry/flaky", "ratings.example.com").status_code
               for _ in range(10)]
    assert retried == [200] * 10, retried
    # An attempt past perTryTimeout is tried again: no call takes the slow 2 s.
    for _ in range(4):
        t0 = time.monotonic()
        r = call(platform, "/retry/slow", "ratings.example.com")
        assert r.status_code == 200 and time.monotonic() - t0 < 1.5, r.text


def test_matches_rewrite_headers_and_redirect(platform):
    platform.apply_text("""apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: api}
spec:
  hosts: ["*.shop.example.com"]
  http:
  - match:
    - uri: {regex: "/items/[0-9]+"}
      method: {exact: DELETE}
    route: [{destination: {host: reviews-v2, port: {number: 9080}}}]
  - match:
    - headers: {end-user: {exact: jason}}
      queryParams: {v: {exact: "2"}}
    route: [{destination: {host: reviews-v2, port: {number: 9080}}}]
  - match: [{uri: {prefix: /old}}]
    redirect: {uri: /new, redirectCode: 302}
  - match: [{uri: {prefix: /v1/}}]
    rewrite: {uri: /internal/, authority: backend.local}
    headers:
      request: {set: {x-env: staging}, add: {x-added: "1"}, remove: [x-secret]}
      response: {set: {x-served-by: osprey}, remove: [x-internal]}
    route: [{destination: {host: reviews-v1, port: {number: 9080}}}]
  - route: [{destination: {host: reviews-v1, port: {number: 9080}}}]
""", wait=False)
    host = "eu.shop.example.com"
    route_ready(platform, "/", host=host, name="reviews-v1")
    assert call(platform, "/items/42", host, method="DELETE").json()["name"] == "reviews-v2"
    assert call(platform, "/items/42", host).json()["name"] == "reviews-v1"
    assert call(platform, "/items/4x", host, method="DELETE").json()["name"] == "reviews-v1"
    assert call(platform, "/p?v=2", host, headers={"end-user": "jason"}).json()["name"] == \
        "reviews-v2"
    assert call(platform, "/p?v=1", host, headers={"end-user": "jason"}).json()["name"] == \
        "reviews-v1"
    r = call(platform, "/old/page", host)
    assert r.status_code == 302 and r.headers["Location"] == f"http://{host}/new", r.headers
    r = call(platform, "/v1/books?x=1", host, headers={"x-secret": "s", "x-env": "prod"})
    seen = r.json()
    assert seen["path"] == "/internal/books?x=1"
    assert seen["host"] == "backend.local"
    assert seen["headers"]["x-env"] == "staging" and seen["headers"]["x-added"] == "1"
    assert "x-secret" not in seen["headers"]
    assert r.headers["x-served-by"] == "osprey" and "x-internal" not in r.headers
    # Another host is not this service's.
    assert call(platform, "/", "shop.example.com").status_code == 404


def test_malformed_resources_are_refused_and_nothing_changes(platform):
    route_ready(platform, "/productpage")
    before = platform.get_json("vs", "bookinfo")
    bad = BOOKINFO.split("---\n")[1].replace("exact: /login", "regex: \"(\"")
    r = platform.apply_text(bad, wait=False, check=False)
    assert r.returncode != 0 and 'spec.http[0].match[2].uri.regex: "(" is not a valid RE2' \
        in r.stderr, r.stderr
    bad = BOOKINFO.split("---\n")[1].replace("number: 9080", "number: 9080\n      weight: 50")
    r = platform.apply_text(bad, wait=False, check=False)
    assert r.returncode != 0 and "spec.http[0].route: the weights sum to 50, want 100" \
        in r.stderr, r.stderr
    assert platform.get_json("vs", "bookinfo") == before
    assert call(platform, "/login").status_code == 200
    # A destination nobody serves: the route answers 503 and an event says why.
    platform.apply_text("""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: nowhere}
spec:
  hosts: [nowhere.example.com]
  http: [{route: [{destination: {host: missing}}]}]
""", wait=False)
    harness.wait_until(lambda: call(platform, "/", "nowhere.example.com").status_code == 503, 10,
                       "the unrouted service answers 503")
    harness.wait_until(lambda: "missing.default.svc.cluster.local) is not a Knative Service"
                       in platform.cli("get", "events").stdout, 10, "RouteIncomplete event")
    # Half to a destination nobody serves: that half answers 503, the rest is served.
    platform.apply_text("""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: halfway}
spec:
  hosts: [halfway.example.com]
  http:
  - route:
    - {destination: {host: missing}, weight: 50}
    - {destination: {host: ratings, port: {number: 9080}}, weight: 50}
""", wait=False)
    harness.wait_until(lambda: call(platform, "/", "halfway.example.com").status_code in (200, 503),
                       10, "the half-routed service answers")
    s = requests.Session()
    codes = [call(platform, "/", "halfway.example.com", session=s).status_code for _ in range(200)]
    assert abs(codes.count(503) - 100) <= 2 and codes.count(200) + codes.count(503) == 200, codes
    # Deleting a VirtualService removes its routes.
    platform.cli("delete", "vs", "bookinfo")
    harness.wait_until(lambda: call(platform, "/productpage").status_code == 404, 10,
                       "bookinfo routes gone")


POOL = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: pool}
spec:
  hosts: [pool.default.svc.cluster.local]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: %(a)d}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {http: %(b)d}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {http: %(c)d}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: pool}
spec:
  host: pool
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection:
      consecutive5xxErrors: 2
      interval: 1s
      baseEjectionTime: 2s
      maxEjectionPercent: 50
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
  - name: sticky
    labels: {version: v1}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpHeaderName: x-user}
  - name: narrow
    labels: {version: v2}
    trafficPolicy:
      connectionPool:
        tcp: {maxConnections: 1}
        http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pool}
spec:
  hosts: [pool.example.com]
  http:
  - match: [{headers: {x-version: {exact: v2}}}]
    route: [{destination: {host: pool, subset: v2}}]
  - match: [{headers: {x-user: {regex: ".+"}}}]
    route: [{destination: {host: pool, subset: sticky}}]
  - match: [{uri: {prefix: /narrow}}]
    route: [{destination: {host: pool, subset: narrow}}]
    retries: {attempts: 0}
  - route: [{destination: {host: pool, subset: v1}}]
"""


def calls_of(port):
    return requests.get(f"http://127.0.0.1:{port}/_calls", timeout=5).json()["calls"]


def test_destination_rule_subsets_balancing_and_outlier_detection(platform, servers):
    ports = {"a": servers["pool-a"], "b": servers["pool-b"], "c": servers["pool-c"]}
    out = platform.apply_text(POOL % ports, wait=False).stdout
    assert "destinationrule.networking.istio.io/pool created" in out, out
    route_ready(platform, "/", host="pool.example.com")
    s = requests.Session()
    host = "pool.example.com"
    # Subsets by the endpoints' labels; round robin within v1.
    assert {call(platform, "/", host, headers={"x-version": "v2"}, session=s).json()["name"]
            for _ in range(10)} == {"pool-c"}
    names = [call(platform, "/", host, session=s).json()["name"] for _ in range(20)]
    assert names.count("pool-a") == 10 and names.count("pool-b") == 10, names
    assert all(names[i] != names[i + 1] for i in range(19)), names
    # Consistent hashing: a user stays on one replica; users spread over both.
    seen = {}
    for user in range(20):
        got = {call(platform, "/", host, headers={"x-user": f"u{user}"}, session=s).json()["name"]
               for _ in range(5)}
        assert len(got) == 1, (user, got)
        seen[user] = got.pop()
    assert set(seen.values()) == {"pool-a", "pool-b"}, seen

    # Outlier detection: pool-a answers 503 from now on; after two in a row it
    # is ejected and takes no more calls (the route's default retry on 503
    # covers the client).
    requests.get(f"http://127.0.0.1:{ports['a']}/_sick/on", timeout=5)
    codes = [call(platform, "/", host, session=s).status_code for _ in range(10)]
    assert codes == [200] * 10, codes
    before = calls_of(ports["a"])
    names = [call(platform, "/", host, session=s).json()["name"] for _ in range(10)]
    assert names == ["pool-b"] * 10, names
    assert calls_of(ports["a"]) == before, "an ejected replica was called"
    # Healthy again, it is back once the ejection time has passed.
    requests.get(f"http://127.0.0.1:{ports['a']}/_sick/off", timeout=5)
    harness.wait_until(
        lambda: call(platform, "/", host, session=s).json()["name"] == "pool-a", 15,
        "pool-a back after its ejection")

    # connectionPool: one in flight and one waiting; the rest are refused at once.
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(call, platform, "/narrow/sleep", host) for _ in range(4)]
        results = [f.result() for f in futures]
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 200, 503, 503], [(r.status_code, r.text) for r in results]
    refused = [r for r in results if r.status_code == 503][0]
    assert "connectionPool limits" in refused.text, refused.text

    rows = [l.split() for l in platform.cli("get", "dr").stdout.splitlines()]
    assert rows[0] == ["NAME", "HOST", "AGE"] and rows[1][:2] == ["pool", "pool"], rows
    # A malformed rule is refused with its field; the applied one stays.
    before = platform.get_json("dr", "pool")
    bad = POOL.split("---\n")[1].replace("simple: ROUND_ROBIN", "simple: PASSTHROUGH")
    r = platform.apply_text(bad, wait=False, check=False)
    assert r.returncode != 0 and "spec.trafficPolicy.loadBalancer.simple: PASSTHROUGH" in r.stderr
    assert platform.get_json("dr", "pool") == before
    # A subset nobody defines: that route answers 503 and an event says why.
    platform.apply_text(POOL.split("---\n")[2].replace("subset: v2", "subset: v7"), wait=False)
    harness.wait_until(
        lambda: call(platform, "/", host, headers={"x-version": "v2"}).status_code == 503, 10,
        "the unknown subset answers 503")
    harness.wait_until(lambda: "subset v7: DestinationRule default/pool has no such subset"
                       in platform.cli("get", "events").stdout, 10, "RouteIncomplete event")


def test_cors_policy_answers_preflights_and_marks_answers(platform):
    platform.apply_text("""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cors}
spec:
  hosts: [cors.example.com]
  http:
  - match: [{uri: {prefix: /strict}}]
    route: [{destination: {host: ratings, port: {number: 9080}}}]
    corsPolicy:
      allowOrigins: [{exact: "https://app.example.com"}]
      unmatchedPreflights: IGNORE
  - match: [{uri: {prefix: /star}}]
    route: [{destination: {host: ratings, port: {number: 9080}}}]
    corsPolicy:
      allowOrigin: ["*"]
      allowMethods: ["*"]
      allowHeaders: ["*"]
      allowCredentials: true
  - match: [{uri: {prefix: /gone}}]
    route: [{destination: {host: nobody}}]
    corsPolicy:
      allowOrigins: [{exact: "https://app.example.com"}]
  - route: [{destination: {host: ratings, port: {number: 9080}}}]
    corsPolicy:
      allowOrigins: [{exact: "https://app.example.com"}, {regex: "https://[a-z]+[.]example[.]org"}]
      allowMethods: [POST, GET]
      allowHeaders: [X-Foo-Bar, Content-Type]
      exposeHeaders: [x-internal]
      maxAge: 24h
      allowCredentials: true
""", wait=False)
    host = "cors.example.com"
    route_ready(platform, "/", host=host)
    preflight = {"Origin": "https://eu.example.org", "Access-Control-Request-Method": "POST"}
    r = call(platform, "/v1/models/x:predict", host, method="OPTIONS", headers=preflight)
    assert r.status_code == 200 and r.text == "", (r.status_code, r.text)
    assert r.headers["Access-Control-Allow-Origin"] == "https://eu.example.org"
    assert r.headers["Access-Control-Allow-Methods"] == "POST,GET"
    assert r.headers["Access-Control-Allow-Headers"] == "X-Foo-Bar,Content-Type"
    assert r.headers["Access-Control-Max-Age"] == "86400"
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    # The actual request is forwarded and its answer says who may read it.
    r = call(platform, "/p", host, method="POST", headers={"Origin": "https://app.example.com"})
    assert r.json()["name"] == "ratings" and r.json()["method"] == "POST"
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert r.headers["Access-Control-Expose-Headers"] == "x-internal"
    # Another origin: nothing added, its preflight goes to the destination.
    r = call(platform, "/p", host, headers={"Origin": "https://evil.example.net"})
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
    r = call(platform, "/p", host, method="OPTIONS",
             headers={"Origin": "https://evil.example.net", "Access-Control-Request-Method": "GET"})
    assert r.status_code == 501 and "Access-Control-Allow-Origin" not in r.headers, r.status_code
    # unmatchedPreflights IGNORE: answered here, without CORS headers.
    r = call(platform, "/strict", host, method="OPTIONS",
             headers={"Origin": "https://evil.example.net", "Access-Control-Request-Method": "GET"})
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
    # Without an Origin, a request is a plain one.
    r = call(platform, "/p", host)
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
    # "*": any origin; the preflight's asked method and headers are echoed.
    r = call(platform, "/star", host, method="OPTIONS",
             headers={"Origin": "https://any.example.net", "Access-Control-Request-Method": "PUT",
                      "Access-Control-Request-Headers": "authorization,x-custom"})
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == \
        "https://any.example.net", r.headers
    assert r.headers["Access-Control-Allow-Methods"] == "PUT"
    assert r.headers["Access-Control-Allow-Headers"] == "authorization,x-custom"
    # The gateway's own answers (no destination: 503) carry them too.
    r = call(platform, "/gone", host, headers={"Origin": "https://app.example.com"})
    assert r.status_code == 503 and r.headers["Access-Control-Allow-Origin"] == \
        "https://app.example.com", (r.status_code, r.headers)


def test_destinations_change_headers_of_their_own(platform):
    platform.apply_text("""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: split-headers}
spec:
  hosts: [split-headers.example.com]
  http:
  - headers:
      request: {set: {x-route: "yes", x-who: route}}
      response: {set: {x-answer: route}}
    route:
    - destination: {host: reviews-v1, port: {number: 9080}}
      weight: 50
      headers:
        request: {set: {x-who: v1}, remove: [x-drop]}
        response: {set: {x-answer: v1}, remove: [x-internal]}
    - destination: {host: reviews-v2, port: {number: 9080}}
      weight: 50
""", wait=False)
    host = "split-headers.example.com"
    route_ready(platform, "/", host=host)
    s = requests.Session()
    seen = {}
    for _ in range(10):
        r = call(platform, "/", host, headers={"x-drop": "1"}, session=s)
        body = r.json()
        seen[body["name"]] = (body["headers"], r.headers)
    assert set(seen) == {"reviews-v1", "reviews-v2"}, seen.keys()
    sent, answer = seen["reviews-v1"]
    assert sent["x-route"] == "yes" and sent["x-who"] == "v1" and "x-drop" not in sent, sent
    assert answer["x-answer"] == "v1" and "x-internal" not in answer, answer
    sent, answer = seen["reviews-v2"]
    assert sent["x-who"] == "route" and sent["x-drop"] == "1", sent
    assert answer["x-answer"] == "route" and answer["x-internal"] == "secret", answer


def test_gateway_servers_on_other_ports_are_listened_on(platform):
    port, busy_port = harness.free_ports(2)
    busy = socket.socket()
    busy.bind(("127.0.0.1", busy_port))
    busy.listen()
    try:
        platform.apply_text(f"""apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: side-gateway}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {port}, name: http-side, protocol: HTTP}}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: side}}
spec:
  hosts: ["side.example.com"]
  gateways: [side-gateway]
  http:
  - match: [{{uri: {{prefix: /only-here}}, port: {port}}}]
    route: [{{destination: {{host: reviews-v2, port: {{number: 9080}}}}}}]
  - route: [{{destination: {{host: reviews-v1, port: {{number: 9080}}}}}}]
""", wait=False)
        side = f"http://127.0.0.1:{port}"

        def on_side(path):
            try:
                r = requests.get(side + path, headers={"Host": "side.example.com"}, timeout=5)
                return r.json()["name"] if r.status_code == 200 else r.status_code
            except requests.ConnectionError:
                return None
        harness.wait_until(lambda: on_side("/") == "reviews-v1", 20, "the Gateway's own port")
        assert on_side("/only-here/x") == "reviews-v2"
        # Bound to that Gateway only: not served on the gateway's own port.
        assert call(platform, "/", "side.example.com").status_code == 404
        # A port something else holds: an event on the Gateway says so.
        platform.apply_text(f"""apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: busy-gateway}}
spec:
  servers:
  - port: {{number: {busy_port}, name: http, protocol: HTTP}}
    hosts: ["*"]
""", wait=False)
        harness.wait_until(lambda: f"port {busy_port} cannot be listened on"
                           in platform.cli("get", "events").stdout, 20, "ListenFailed event")
        assert on_side("/") == "reviews-v1"
        # The Gateway deleted: its port is no longer listened on.
        platform.cli("delete", "gateway", "side-gateway")
        harness.wait_until(lambda: on_side("/") is None, 20, "the port closed")
    finally:
        busy.close()


def make_certificate(dir, name, host):
    """A self-signed certificate for `host` (its SAN) and its key, as PEM files."""
    crt, key = dir / f"{name}.pem", dir / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(crt), "-days", "2", "-subj", f"/CN={host}",
                    "-addext", f"subjectAltName=DNS:{host}"],
                   check=True, capture_output=True, timeout=60)
    return crt, key


def https_get(port, host, path, cafile, tls_max=None):
    """GET over TLS to 127.0.0.1:port, asking for `host` (SNI and Host) and
    trusting only `cafile`: (status, head, body)."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    if tls_max is not None:
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = tls_max
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with ctx.wrap_socket(sock, server_hostname=host) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), head.decode(), body


SECURE = """apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: secure}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: [shop.example.com]
    tls: {{httpsRedirect: true}}
  - port: {{number: {port}, name: https-shop, protocol: HTTPS}}
    hosts: [shop.example.com]
    tls: {{mode: SIMPLE, serverCertificate: {shop_crt}, privateKey: {shop_key}}}
  - port: {{number: {port}, name: https-api, protocol: HTTPS}}
    hosts: ["*.api.example.com"]
    tls: {{mode: SIMPLE, serverCertificate: {api_crt}, privateKey: {api_key}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: secure}}
spec:
  hosts: [shop.example.com, v1.api.example.com]
  gateways: [secure]
  http:
  - route: [{{destination: {{host: reviews-v1, port: {{number: 9080}}}}}}]
"""


def test_https_gateway_servers_terminate_tls_by_sni_and_redirect_http(platform, osprey_bin,
                                                                      servers, tmp_path):
    shop_crt, shop_key = make_certificate(tmp_path, "shop", "shop.example.com")
    api_crt, api_key = make_certificate(tmp_path, "api", "*.api.example.com")
    port, https_port = harness.free_ports(2)
    platform.apply_text(SECURE.format(port=port, shop_crt=shop_crt, shop_key=shop_key,
                                      api_crt=api_crt, api_key=api_key), wait=False)

    def answered():
        try:
            return https_get(port, "shop.example.com", "/x", shop_crt)[0] == 200
        except OSError:
            return False
    harness.wait_until(answered, 20, "the HTTPS server")
    status, head, body = https_get(port, "shop.example.com", "/cart?id=1", shop_crt)
    assert status == 200 and json.loads(body)["name"] == "reviews-v1", head
    # Each host gets its own certificate (SNI): the api one verifies only
    # against its own certificate.
    status, _, body = https_get(port, "v1.api.example.com", "/", api_crt)
    assert status == 200 and json.loads(body)["name"] == "reviews-v1"
    with pytest.raises(ssl.SSLCertVerificationError):
        https_get(port, "v1.api.example.com", "/", shop_crt)
    # Old TLS is refused; plain HTTP on the TLS port gets nothing, and the
    # port goes on serving.
    with pytest.raises(ssl.SSLError):
        https_get(port, "shop.example.com", "/", shop_crt, tls_max=ssl.TLSVersion.TLSv1_1)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: shop.example.com\r\n\r\n")
        assert b"200 OK" not in s.recv(4096)
    assert https_get(port, "shop.example.com", "/", shop_crt)[0] == 200
    # Plain HTTP to the shop on the gateway's own port: sent to https.
    r = call(platform, "/cart?id=1", "shop.example.com")
    assert (r.status_code, r.headers["Location"]) == (301, "https://shop.example.com/cart?id=1")
    # A renewal rewrites the files in place: the next connections get the
    # new certificate (verified here against the new one alone).
    renewed_crt, renewed_key = make_certificate(tmp_path, "renewed", "shop.example.com")
    shop_key.write_bytes(renewed_key.read_bytes())
    shop_crt.write_bytes(renewed_crt.read_bytes())

    def renewed():
        try:
            return https_get(port, "shop.example.com", "/", renewed_crt)[0] == 200
        except (OSError, ssl.SSLError):
            return False
    harness.wait_until(renewed, 20, "the renewed certificate")
    # A certificate that cannot be loaded: an event names it, the port stays
    # as it was.
    platform.apply_text(SECURE.format(port=port, shop_crt=tmp_path / "missing.pem",
                                      shop_key=shop_key, api_crt=api_crt, api_key=api_key),
                        wait=False)
    harness.wait_until(lambda: "missing.pem cannot be loaded" in platform.cli("get", "events").stdout,
                       20, "the ListenFailed event")
    assert https_get(port, "shop.example.com", "/", renewed_crt)[0] == 200
    platform.cli("delete", "gateway", "secure")
    platform.cli("delete", "virtualservice", "secure")

    # Port 443 is the gateway's own HTTPS port: --https-port.
    other = Platform(osprey_bin, tmp_path / "https-home",
                     extra_args=["--https-port", str(https_port)]).start()
    try:
        other.apply_text(service_entry("reviews-v1", servers["reviews-v1"]), wait=False)
        other.apply_text(SECURE.format(port=443, shop_crt=shop_crt, shop_key=shop_key,
                                       api_crt=api_crt, api_key=api_key), wait=False)

        def on_https_port():
            try:
                return https_get(https_port, "shop.example.com", "/", shop_crt)
            except OSError:
                return None
        harness.wait_until(lambda: (on_https_port() or [0])[0] == 200, 20, "--https-port")
        assert json.loads(on_https_port()[2])["name"] == "reviews-v1"
        # The redirect points at where 443 is served.
        r = requests.get(f"{other.gateway}/x", headers={"Host": "shop.example.com"}, timeout=10,
                         allow_redirects=False)
        assert r.headers["Location"] == f"https://shop.example.com:{https_port}/x"
    finally:
        other.stop_everything()
