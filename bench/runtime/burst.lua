-- burst.lua -- memory back after a burst of tasks.
--
-- Usage: hklua --threads=T burst.lua [tasks] [records] [idle_ms]
--        (defaults 64 tasks of 40000 records (~4 MiB each), 3000 ms idle)
-- The main task spawns the tasks in waves of 16 and joins them; each
-- builds its records and returns their count.  Then the burst is over:
-- "mark idle" and the main task sleeps idle_ms while the workers have
-- nothing to do (the runner samples the process's RSS all along; with the
-- collector on, it asks the workers to return memory and closes the
-- states itself).
--
-- Output: "mark start", "mark idle", "mark done", "result tasks=N checksum=C".
local rt = require "hakrt"

local N = tonumber(arg and arg[1]) or 64
local RECORDS = tonumber(arg and arg[2]) or 40000
local IDLE = tonumber(arg and arg[3]) or 3000

local function task(n)
  local recs = {}
  for i = 1, n do recs[i] = {name = "r" .. i, v = i, tags = {i}} end
  return #recs
end

print("mark start")
local sum = 0
for first = 1, N, 16 do
  local hs = {}
  for i = first, math.min(N, first + 15) do hs[#hs + 1] = rt.spawn(task, RECORDS) end
  for _, h in ipairs(hs) do
    local ok, n = h:join()
    assert(ok, n)
    sum = sum + n
  end
end
print("mark idle")
rt.sleep(IDLE)
print("mark done")
print(string.format("result tasks=%d checksum=%d", N, sum))
