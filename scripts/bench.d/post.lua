-- wrk script: POST a fixed ~1 KiB chat request. BENCH_BODY (a file) and BENCH_AUTH (a gateway
-- key, optional) come from the environment; BENCH_UPSTREAM_DELAY_MS asks the mock upstream to
-- wait that long before its response head (a model's time to first byte). When wrk is done it prints one machine-readable
-- line (exact counts, latencies in µs) that scripts/bench parses instead of wrk's rounded text.
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. auth
end

local delay = os.getenv("BENCH_UPSTREAM_DELAY_MS")
if delay and delay ~= "" and delay ~= "0" then
  wrk.headers["x-mock-head-delay-ms"] = delay
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d status_errors=%d socket_errors=%d p50=%d p90=%d p99=%d p999=%d max=%d\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max))
end
