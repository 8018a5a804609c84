-- Where finished states are closed with collector_close_min at 256 KiB
-- (set by the test): small tasks by their workers, large ones (a few MiB
-- of records) on the collector.  Every result is checked.
local rt = require "hakrt"
local scale = tonumber((...)) or 1
local SMALL, LARGE = 40 // scale, 4

local function small(i)
  local t = {}
  for j = 1, 100 do t[j] = {i, j} end
  return #t
end

local function large(n)
  local t = {}
  for j = 1, n do t[j] = {name = "r" .. j, v = j} end -- well above 256 KiB
  return #t
end

local hs = {}
for i = 1, SMALL do hs[#hs + 1] = rt.spawn(small, i) end
for _ = 1, LARGE do hs[#hs + 1] = rt.spawn(large, 20000) end
for i, h in ipairs(hs) do
  local ok, n = h:join()
  assert(ok and n == (i <= SMALL and 100 or 20000), "task " .. i)
end
-- the last closes may still be on their way: wait for the collector
local s
for _ = 1, 100 do
  s = rt.stats()
  if s.collector.pending == 0 then break end
  rt.sleep(10)
end
local by_workers = 0
for _, w in ipairs(s.per_worker) do by_workers = by_workers + w.closed end
assert(s.collector.closed == LARGE,
       "collector closed " .. s.collector.closed .. ", expected " .. LARGE)
assert(by_workers == SMALL, "workers closed " .. by_workers .. ", expected " .. SMALL)
print("close_min ok")
