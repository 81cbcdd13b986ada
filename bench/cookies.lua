-- wrk script for bench/run.py: every request carries a random user's session cookie.
--
--   wrk -t1 -c32 -d10s -s bench/cookies.lua http://127.0.0.1:4180/ -- COOKIES_FILE [COOKIE_NAME]
--
-- COOKIES_FILE has one cookie value per line (bench/standin_server.py writes it).
-- At the end one machine-readable line is printed:
--   BENCH_JSON {"requests":..., "duration_us":..., "p50_us":..., "p99_us":..., ...}

local cookies = {}
local cookie_name = "ory_kratos_session"

function init(args)
   local path = args[1]
   if path == nil then
      error("usage: wrk ... -s cookies.lua URL -- COOKIES_FILE [COOKIE_NAME]")
   end
   if args[2] ~= nil then
      cookie_name = args[2]
   end
   for line in io.lines(path) do
      if #line > 0 then
         cookies[#cookies + 1] = line
      end
   end
   if #cookies == 0 then
      error("no cookies in " .. path)
   end
   -- A different sequence per thread and per run.
   local address = tonumber(tostring(cookies):match("0x(%x+)") or "0", 16) or 0
   math.randomseed(os.time() + address % 1000003)
end

function request()
   local value = cookies[math.random(#cookies)]
   return wrk.format(nil, nil, { ["Cookie"] = cookie_name .. "=" .. value })
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
         .. '"max_us":%d,"errors_connect":%d,"errors_read":%d,"errors_write":%d,'
         .. '"errors_status":%d,"errors_timeout":%d}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
