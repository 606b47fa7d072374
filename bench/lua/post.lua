-- POST load for wrk, used by bench/run.py for every scenario.
--
--   wrk -t1 -c32 -d10s --latency -s bench/lua/post.lua URL -- BODY_FILE CONTENT_TYPE [HEADER_LENGTH]
--
-- BODY_FILE      request body, sent byte for byte (JSON or the V2 binary
--                extension's JSON header followed by raw tensor bytes)
-- CONTENT_TYPE   value of the Content-Type header
-- HEADER_LENGTH  optional; when given, sent as Inference-Header-Content-Length
--                (length of the JSON part of a V2 binary extension body)
--
-- The request is built once per thread in init(); wrk then replays it on every
-- connection with keep-alive. done() prints one machine-readable line,
-- "BENCH_RESULT {json}", that run.py parses (latencies in microseconds).

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

function init(args)
  assert(args[1] and args[2], "usage: -- BODY_FILE CONTENT_TYPE [HEADER_LENGTH]")
  wrk.method = "POST"
  wrk.body = read_file(args[1])
  wrk.headers["Content-Type"] = args[2]
  if args[3] ~= nil and args[3] ~= "" then
    wrk.headers["Inference-Header-Content-Length"] = args[3]
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT {\"requests\":%.0f,\"duration_us\":%.0f,\"bytes\":%.0f," ..
    "\"errors_connect\":%.0f,\"errors_read\":%.0f,\"errors_write\":%.0f," ..
    "\"errors_status\":%.0f,\"errors_timeout\":%.0f," ..
    "\"latency_p50_us\":%.1f,\"latency_p90_us\":%.1f,\"latency_p99_us\":%.1f," ..
    "\"latency_mean_us\":%.1f,\"latency_max_us\":%.1f}\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
