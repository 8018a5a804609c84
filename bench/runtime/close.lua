-- close.lua -- closing large states: on the worker, or on the collector
-- with or without batched remote frees.
--
-- Usage: hklua --threads=T --stats=json close.lua [tasks] [records] [bytes]
--        (defaults 16 tasks of 100000 records; bytes: 0)
-- With bytes > 0 every record also holds a string of that many bytes, a
-- block above the state's region (bytes > 1 KiB) that its close frees
-- one by one: the case batched remote frees are for.
-- Each task builds its records on the workers (migrating between them, so
-- its blocks live in both heaps) and returns; its state is closed where
-- the runtime's switches say.  The figures come from --stats=json:
-- close_ms per state, remote frees and the atomic pushes they took.
--
-- Output: "mark start", "mark done", "result tasks=N checksum=C".
local rt = require "hakrt"

local N = tonumber(arg and arg[1]) or 16
local RECORDS = tonumber(arg and arg[2]) or 100000
local BYTES = tonumber(arg and arg[3]) or 0

local function task(n, bytes)
  local rt = require "hakrt"
  local recs = {}
  local pad = bytes > 0 and string.rep("x", bytes - 8) or nil
  for i = 1, n do
    recs[i] = {name = "r" .. i, v = i}
    if pad then recs[i].body = pad .. string.format("%08d", i) end
    if i % 20000 == 0 then rt.yield() end
  end
  return #recs
end

print("mark start")
local hs, sum = {}, 0
for i = 1, N do hs[i] = rt.spawn(task, RECORDS, BYTES) end
for i = 1, N do
  local ok, n = hs[i]:join()
  assert(ok, n)
  sum = sum + n
end
print("mark done")
print(string.format("result tasks=%d checksum=%d", N, sum))
