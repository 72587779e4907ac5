-- wrk script used for every server in this benchmark: POST the file named by $BODY_FILE and,
-- when done, print one line "RESULT {json}" with counts and latency percentiles (microseconds).
local file = assert(io.open(assert(os.getenv("BODY_FILE"), "BODY_FILE not set"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
-- Optional "Name: value" header on every request (the A/B hop benchmark sends a user key).
local extra = os.getenv("EXTRA_HEADER")
if extra then
  local name, value = extra:match("^([^:]+):%s*(.*)$")
  wrk.headers[name] = value
end

local all_threads = {}

function setup(thread)
  all_threads[#all_threads + 1] = thread
end

function init(args)
  failed = 0
  first_failure = ""
end

function response(status, headers, body)
  if status ~= 200 then
    if failed == 0 then first_failure = status .. " " .. string.sub(body or "", 1, 200) end
    failed = failed + 1
  end
end

function done(summary, latency, requests)
  local failed_total = 0
  for _, thread in ipairs(all_threads) do
    failed_total = failed_total + (thread:get("failed") or 0)
  end
  local errors = summary.errors
  local socket_errors = errors.connect + errors.read + errors.write + errors.timeout
  io.write("RESULT " .. string.format(
    '{"requests": %d, "duration_us": %d, "non200": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}',
    summary.requests, summary.duration, failed_total, socket_errors,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean) .. "\n")
end
