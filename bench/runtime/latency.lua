-- latency.lua -- request latency: request-like tasks arriving at a steady rate.
--
-- Usage: hklua --threads=T latency.lua [requests] [rate] [objects]
--        (defaults 6000 requests, 3000 per second, 300 objects each)
-- Request i is due at start + i / rate (an open loop: a driver that falls
-- behind does not slow the arrivals, and the lag counts in the latency).
-- It is never spawned before it is due: an early spawn (the driver used to
-- skip sleeps under 0.2 ms) made latencies at 4000 per second as low as
-- -0.07 ms.
-- Each request is a new task (a new Lua state): it builds a response of
-- `objects` small tables with strings, serialises part of it and sends its
-- latency -- from its due time to its response -- to a sink task.  The
-- state is closed after that: by the collector thread, or with
-- --collector=off by the worker, which then serves the next request later.
--
-- Output: "mark start", "mark done", then
-- "result requests=N p50_ms=.. p99_ms=.. p999_ms=.. max_ms=.. checksum=C".
local rt = require "hakrt"

local N = tonumber(arg and arg[1]) or 6000
local RATE = tonumber(arg and arg[2]) or 3000
local OBJ = tonumber(arg and arg[3]) or 300

local function request(due, i, nobj, results)
  local rt = require "hakrt"
  local resp = {}
  for k = 1, nobj do resp[k] = {id = k, name = "item" .. k, value = i * k} end
  local parts = {}
  for k = 1, nobj, 10 do parts[#parts + 1] = resp[k].name .. "=" .. resp[k].value end
  local body = table.concat(parts, ",")
  results:send(rt.now() - due, #body)
end

local function sink(results, n)
  local lat, sum = {}, 0
  for i = 1, n do
    local l, len = results:recv()
    lat[i] = l * 1000
    sum = sum + len
  end
  table.sort(lat)
  local function pct(p) return lat[math.max(1, math.ceil(n * p / 100))] end
  return pct(50), pct(99), pct(99.9), lat[n], sum
end

local results = rt.channel(4096)
local s = rt.spawn(sink, results, N)
print("mark start")
local t0 = rt.now() + 0.005
for i = 1, N do
  local due = t0 + (i - 1) / RATE
  local wait = due - rt.now()
  if wait > 0 then rt.sleep(wait * 1000) end
  rt.spawn(request, due, i, OBJ, results)
end
local ok, p50, p99, p999, max, sum = s:join()
assert(ok, p50)
print("mark done")
print(string.format("result requests=%d p50_ms=%.4f p99_ms=%.4f p999_ms=%.4f max_ms=%.4f checksum=%d",
                    N, p50, p99, p999, max, sum))
