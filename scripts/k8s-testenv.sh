#!/usr/bin/env bash
# A real Kubernetes control plane for Osprey's operator tests, on loopback.
#
#   scripts/k8s-testenv.sh build        build the binaries into the cache (idempotent)
#   scripts/k8s-testenv.sh start DIR    certificates, etcd, kube-apiserver,
#                                       kube-controller-manager, kube-scheduler; writes
#                                       DIR/kubeconfig (cluster-admin) and prints the
#                                       KUBECONFIG and PATH export lines
#   scripts/k8s-testenv.sh stop DIR     stops what start started in DIR
#   (start again on a DIR whose components run starts only those that do not:
#   kill the API server and start DIR brings it back on the same port and data)
#   scripts/k8s-testenv.sh bin          prints the directory of the built binaries
#
# etcd (go.etcd.io/etcd/server/v3) and kube-apiserver, kube-controller-manager,
# kube-scheduler and kubectl (k8s.io/kubernetes, through a wrapper module that
# pins each staging module to its published v0.X.Y) are built from the Go module
# proxy into a cache outside the work tree, keyed by version:
# ${OSPREY_CACHE:-$HOME/.cache/osprey}/k8s-v$KVER-etcd-v$ETCD_VER. A warm
# machine skips the build; a cold one takes about 12 minutes on 2 cores.
#
# Knobs (environment): KVER, ETCD_VER, OSPREY_CACHE, APISERVER_PORT (default: a
# free port), WITH_KCM=0 (no controller manager), WITH_SCHEDULER=0 (no scheduler),
# APISERVER_ARGS (more kube-apiserver flags), NICE (default "nice -n 10").
# DIR/apiserver.port and DIR/etcd.port hold the ports; DIR/<component>.pid the PIDs.
set -euo pipefail

KVER=${KVER:-1.34.4}
ETCD_VER=${ETCD_VER:-3.6.16}
CACHE=${OSPREY_CACHE:-${HOME:-/tmp}/.cache/osprey}/k8s-v$KVER-etcd-v$ETCD_VER
BIN=$CACHE/bin
NICE=${NICE:-nice -n 10}
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
KUBE_BINS="kube-apiserver kubectl kube-controller-manager kube-scheduler"

log() { echo "[k8s-testenv $(date +%T)] $*" >&2; }

build_etcd() {
  [ -x "$BIN/etcd" ] && return
  log "building etcd v$ETCD_VER into $BIN"
  mkdir -p "$CACHE/src/etcd" "$BIN"
  (cd "$CACHE/src/etcd"
   [ -f go.mod ] || "$GO" mod init example.invalid/etcdbin >/dev/null 2>&1
   # server/v3 at a release tag requires published api/client/pkg versions
   $NICE "$GO" get -tool "go.etcd.io/etcd/server/v3@v$ETCD_VER"
   $NICE "$GO" build -trimpath -ldflags='-s -w' -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3
   mv "$BIN/etcd.tmp" "$BIN/etcd")
}

build_kube() {
  local p need=0
  for p in $KUBE_BINS; do [ -x "$BIN/$p" ] || need=1; done
  [ $need = 0 ] && return
  mkdir -p "$CACHE/src/kube" "$BIN"
  (cd "$CACHE/src/kube"
   if [ ! -f .ready ]; then
     rm -f go.mod go.sum
     "$GO" mod init example.invalid/kubebins >/dev/null 2>&1
     local kgomod m gd
     kgomod=$($NICE "$GO" mod download -json "k8s.io/kubernetes@v$KVER" |
              sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
     # k/k requires every staging module at v0.0.0 (=> ./staging/src/...), which
     # the proxy does not serve: pin each to its published v0.X.Y.
     for m in $(sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/src/.*#\1#p' "$kgomod"); do
       "$GO" mod edit -replace="$m=$m@v0.${KVER#1.}"
     done
     "$GO" mod edit -require="k8s.io/kubernetes@v$KVER"
     gd=$(sed -n 's/^godebug \(default=go[0-9.]*\).*/\1/p' "$kgomod")
     [ -n "$gd" ] && "$GO" mod edit -godebug="$gd"
     for p in $KUBE_BINS; do $NICE "$GO" get -tool "k8s.io/kubernetes/cmd/$p@v$KVER"; done
     touch .ready
   fi
   local minor ld="-s -w" vp bdate
   minor=$(echo "$KVER" | cut -d. -f2)
   bdate=$("$GO" list -m -json "k8s.io/kubernetes@v$KVER" | sed -n 's/.*"Time": "\(.*\)".*/\1/p')
   for vp in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
     ld="$ld -X $vp.gitVersion=v$KVER -X $vp.gitMajor=1 -X $vp.gitMinor=$minor"
     ld="$ld -X $vp.gitTreeState=clean -X $vp.buildDate=${bdate:-1970-01-01T00:00:00Z}"
   done
   for p in $KUBE_BINS; do
     [ -x "$BIN/$p" ] && continue
     log "building $p v$KVER into $BIN"
     $NICE "$GO" build -trimpath -tags=selinux,notest -ldflags="$ld" -o "$BIN/$p.tmp" \
       "k8s.io/kubernetes/cmd/$p"
     mv "$BIN/$p.tmp" "$BIN/$p"
   done)
}

build() {
  export GOMODCACHE=$CACHE/gomod GOCACHE=$CACHE/gocache
  export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local}
  # One build at a time per cache (make test and a developer may race).
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"; flock 9
  build_etcd
  build_kube
  exec 9>&-
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

alive() {  # pid; a zombie (killed, not yet reaped by whoever adopted it) is not
  [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat")" != Z ]
}

binary_of() {  # component -> its binary
  case $1 in
    apiserver) echo kube-apiserver ;; kcm) echo kube-controller-manager ;;
    scheduler) echo kube-scheduler ;; *) echo "$1" ;;
  esac
}

running() {  # dir, component: its PID file names a live process of its binary
  local pid
  [ -f "$1/$2.pid" ] || return 1
  pid=$(cat "$1/$2.pid")
  alive "$pid" && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$BIN/$(binary_of "$2")" ]
}

wait_for() {  # seconds, command...
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -ge "$deadline" ] && return 1
    sleep 0.2
  done
}

gen_pki() {
  local d=$1/pki
  [ -f "$d/tokens.csv" ] && return
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=osprey-test-ca \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver \
    -keyout "$d/apiserver.key" -out "$d/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n' > "$d/san.ext"
  openssl x509 -req -in "$d/apiserver.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 365 -extfile "$d/san.ext" -out "$d/apiserver.crt" 2>/dev/null
  # cluster-admin as a client certificate (O = group): the kubeconfig's user
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=osprey-admin" \
    -keyout "$d/admin.key" -out "$d/admin.csr" 2>/dev/null
  openssl x509 -req -in "$d/admin.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 365 -out "$d/admin.crt" 2>/dev/null
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  # static tokens: token,user,uid,"groups" (admin, the controller manager, the scheduler)
  tok() { head -c16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
  { echo "$(tok),osprey-admin,admin-uid,\"system:masters\""
    echo "$(tok),system:kube-controller-manager,kcm-uid,\"system:masters\""
    echo "$(tok),system:kube-scheduler,sched-uid,\"system:masters\""; } > "$d/tokens.csv"
}

kubeconfig_token() {  # server, ca, token
  cat <<KC
apiVersion: v1
kind: Config
clusters:
- name: osprey-test
  cluster: {server: "$1", certificate-authority: "$2"}
users:
- name: user
  user: {token: "$3"}
contexts:
- name: osprey-test
  context: {cluster: osprey-test, user: user}
current-context: osprey-test
KC
}

kubeconfig_cert() {  # server, ca, cert, key (embedded as data, as kubeadm writes it)
  cat <<KC
apiVersion: v1
kind: Config
clusters:
- name: osprey-test
  cluster:
    server: "$1"
    certificate-authority-data: $(base64 -w0 < "$2")
users:
- name: osprey-admin
  user:
    client-certificate-data: $(base64 -w0 < "$3")
    client-key-data: $(base64 -w0 < "$4")
contexts:
- name: osprey-test
  context: {cluster: osprey-test, user: osprey-admin, namespace: default}
current-context: osprey-test
KC
}

start() {
  local dir=$1
  build
  mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
  gen_pki "$dir"
  local pki=$dir/pki port eport pport server
  port=${APISERVER_PORT:-$(cat "$dir/apiserver.port" 2>/dev/null || free_port)}
  echo "$port" > "$dir/apiserver.port"
  eport=$(cat "$dir/etcd.port" 2>/dev/null || free_port); pport=$(free_port)
  echo "$eport" > "$dir/etcd.port"
  server=https://127.0.0.1:$port
  kubeconfig_cert "$server" "$pki/ca.crt" "$pki/admin.crt" "$pki/admin.key" > "$dir/kubeconfig"
  kubeconfig_token "$server" "$pki/ca.crt" "$(sed -n 2p "$pki/tokens.csv" | cut -d, -f1)" \
    > "$dir/kcm.kubeconfig"
  kubeconfig_token "$server" "$pki/ca.crt" "$(sed -n 3p "$pki/tokens.csv" | cut -d, -f1)" \
    > "$dir/scheduler.kubeconfig"

  if ! running "$dir" etcd; then
    "$BIN/etcd" --data-dir="$dir/etcd" --name=osprey-test \
      --listen-client-urls="http://127.0.0.1:$eport" --advertise-client-urls="http://127.0.0.1:$eport" \
      --listen-peer-urls="http://127.0.0.1:$pport" --initial-advertise-peer-urls="http://127.0.0.1:$pport" \
      --initial-cluster="osprey-test=http://127.0.0.1:$pport" \
      --unsafe-no-fsync --log-level=warn >> "$dir/etcd.log" 2>&1 &
    echo $! > "$dir/etcd.pid"
  fi
  wait_for 60 curl -sf "http://127.0.0.1:$eport/health" ||
    { tail -20 "$dir/etcd.log" >&2; log "etcd did not become healthy"; exit 1; }

  if ! running "$dir" apiserver; then
    # shellcheck disable=SC2086
    "$BIN/kube-apiserver" ${APISERVER_ARGS:-} \
      --etcd-servers="http://127.0.0.1:$eport" \
      --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$port" \
      --cert-dir="$pki/serving" \
      --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
      --client-ca-file="$pki/ca.crt" --token-auth-file="$pki/tokens.csv" \
      --authorization-mode=RBAC \
      --service-account-issuer="$server" \
      --service-account-key-file="$pki/sa.pub" \
      --service-account-signing-key-file="$pki/sa.key" \
      --service-cluster-ip-range=10.0.0.0/16 \
      --disable-admission-plugins=ServiceAccount --allow-privileged=true \
      --enable-priority-and-fairness=false \
      --endpoint-reconciler-type=none >> "$dir/apiserver.log" 2>&1 &
    echo $! > "$dir/apiserver.pid"
  fi
  wait_for 120 curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "$server/readyz" ||
    { tail -30 "$dir/apiserver.log" >&2; log "kube-apiserver did not become ready"; exit 1; }

  if [ "${WITH_KCM:-1}" = 1 ] && ! running "$dir" kcm; then
    "$BIN/kube-controller-manager" --kubeconfig="$dir/kcm.kubeconfig" \
      --secure-port=0 --leader-elect=false \
      --root-ca-file="$pki/ca.crt" --service-account-private-key-file="$pki/sa.key" \
      --controllers='*' --concurrent-deployment-syncs=10 --concurrent-replicaset-syncs=10 \
      --kube-api-qps=200 --kube-api-burst=400 >> "$dir/kcm.log" 2>&1 &
    echo $! > "$dir/kcm.pid"
  fi
  if [ "${WITH_SCHEDULER:-1}" = 1 ] && ! running "$dir" scheduler; then
    "$BIN/kube-scheduler" --kubeconfig="$dir/scheduler.kubeconfig" \
      --secure-port=0 --leader-elect=false >> "$dir/scheduler.log" 2>&1 &
    echo $! > "$dir/scheduler.pid"
  fi
  echo "export KUBECONFIG=$dir/kubeconfig"
  echo "export PATH=$BIN:\$PATH"
}

stop() {
  local dir=$1 c pid
  for c in scheduler kcm apiserver etcd; do
    # Only a process of its own binary: a PID file may outlive its process.
    running "$dir" "$c" || { rm -f "$dir/$c.pid"; continue; }
    pid=$(cat "$dir/$c.pid")
    if kill "$pid" 2>/dev/null; then
      for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/$c.pid"
  done
}

case ${1:-} in
  build) build ;;
  bin) echo "$BIN" ;;
  start) start "${2:?usage: $0 start DIR}" ;;
  stop) stop "${2:?usage: $0 stop DIR}" ;;
  *) echo "usage: $0 build | bin | start DIR | stop DIR" >&2; exit 2 ;;
esac
