-- spawn.lua -- short request-like tasks, spawned in waves and joined.
--
-- Usage: hklua --threads=T spawn.lua [tasks] [wave]   (defaults 20000, 200)
-- The main task spawns `wave` tasks at a time, then joins them in order,
-- until `tasks` have run.  Each task builds a small response (a table of
-- 50 small tables with strings and numbers), serialises it into one
-- string of ~500 bytes and returns it; the main task checks its head and
-- length.  Every task is a new Lua state: created, run, closed.
--
-- Output: "mark start", one "mark wave" after each wave is joined and
-- "mark done" (the runner timestamps the lines: tasks per second from the
-- wall clock between start and done, and wave latency between marks),
-- then "result tasks=N checksum=C cpu_p50_ms=X cpu_p99_ms=Y".
--
-- cpu_p50_ms and cpu_p99_ms: per task, os.clock() just before its spawn to
-- just after its join returned, in the main task.  os.clock() is the
-- PROCESS'S CPU time (all workers together), not wall time: Lua has no
-- monotonic clock.  With one worker it is the runtime's own busy time
-- between spawn and join (time other processes took the core is left
-- out); with more workers it adds up the CPU of all of them.

local rt = require "hakrt"

local N = tonumber(arg and arg[1]) or 20000
local WAVE = tonumber(arg and arg[2]) or 200

local function handler(i)
  local resp = {}
  for k = 1, 50 do
    resp[k] = {key = "k" .. k, value = i * k, tag = (k % 3 == 0) and "fizz" or "n"}
  end
  local parts = {}
  for k = 1, 50 do
    local r = resp[k]
    parts[k] = r.key .. "=" .. r.value .. ";" .. r.tag
  end
  return table.concat(parts, "&")
end

local lat, sum, done = {}, 0, 0
print("mark start")
for first = 1, N, WAVE do
  local last = math.min(N, first + WAVE - 1)
  local hs, t0 = {}, {}
  for i = first, last do
    t0[#t0 + 1] = os.clock()
    hs[#hs + 1] = rt.spawn(handler, i)
  end
  for j, h in ipairs(hs) do
    local ok, s = h:join()
    lat[#lat + 1] = os.clock() - t0[j]
    local i = first + j - 1
    if not ok then error(string.format("spawn: task %d failed: %s", i, tostring(s))) end
    local want = "k1=" .. i .. ";n&"
    if type(s) ~= "string" or s:sub(1, #want) ~= want then
      error(string.format("spawn: task %d: wrong response", i))
    end
    sum = sum + #s
    done = done + 1
  end
  print("mark wave")
end
print("mark done")
if done ~= N then error(string.format("spawn: %d tasks joined, want %d", done, N)) end

table.sort(lat)
local function pct(p)  -- nearest rank
  local k = math.max(1, math.min(#lat, math.ceil(p / 100 * #lat)))
  return lat[k] * 1000
end
print(string.format("result tasks=%d checksum=%d cpu_p50_ms=%.4f cpu_p99_ms=%.4f",
                    done, sum, pct(50), pct(99)))
