-- close.lua -- closing large states: on the worker, or on the collector
-- with or without batched remote frees.
--
-- Usage: hklua --threads=T --stats=json close.lua [tasks] [records]
--        (defaults 16 tasks of 100000 records)
-- Each task builds its records on the workers (migrating between them, so
-- its blocks live in both heaps) and returns; its state is closed where
-- the runtime's switches say.  The figures come from --stats=json:
-- close_ms per state, remote frees and the atomic pushes they took.
--
-- Output: "mark start", "mark done", "result tasks=N checksum=C".
local rt = require "hakrt"

local N = tonumber(arg and arg[1]) or 16
local RECORDS = tonumber(arg and arg[2]) or 100000

local function task(n)
  local rt = require "hakrt"
  local recs = {}
  for i = 1, n do
    recs[i] = {name = "r" .. i, v = i}
    if i % 20000 == 0 then rt.yield() end
  end
  return #recs
end

print("mark start")
local hs, sum = {}, 0
for i = 1, N do hs[i] = rt.spawn(task, RECORDS) end
for i = 1, N do
  local ok, n = hs[i]:join()
  assert(ok, n)
  sum = sum + n
end
print("mark done")
print(string.format("result tasks=%d checksum=%d", N, sum))
