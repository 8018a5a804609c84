-- States closed on the collector while the workers allocate and free into
-- the same pages: 200 (/ scale) short tasks (each with 30 strings of 1.5 to
-- 3 KB, blocks above the region) finish (each state, built on
-- the workers, is closed on the collector, unless its bounded queue is
-- full: all its frees are remote) while two long tasks churn small
-- tables.  Every result is checked.  Run with collector_close_min 0
-- (--close-min=0): these states are small.
local rt = require "hakrt"
local scale = tonumber((...)) or 1
local N = 200 // scale
local stop = rt.channel(2)

local function churn(stop)
  local rt = require "hakrt"
  local keep, n = {}, 0
  while true do
    for i = 1, 500 do keep[(n + i) % 300 + 1] = {n, tostring(n + i)} end
    n = n + 500
    local v, why = stop:recv(0)
    if v ~= nil or why == "closed" then break end
    rt.yield()
  end
  for i = 1, 300 do assert(type(keep[i]) == "table") end
  return n
end

local churners = {rt.spawn(churn, stop), rt.spawn(churn, stop)}
local short = {}
local function short_task(i)
  local t = {}
  for j = 1, 300 do t[j] = {i, j, string.rep("x", j % 40)} end
  -- blocks above the region too: the close frees them one by one, page by
  -- page, into pages the workers' other states are allocating from
  for j = 1, 300, 10 do t[j][4] = string.rep("y", 1500 + 50 * (j % 30)) .. i end
  local sum = 0
  for j = 1, #t do sum = sum + t[j][2] end
  setmetatable(t, {__gc = function() end}) -- a finalizer runs at the close
  return sum
end
for i = 1, N do short[i] = rt.spawn(short_task, i) end
for i = 1, N do
  local ok, sum = short[i]:join()
  assert(ok and sum == 300 * 301 // 2, "short task " .. i)
end
-- On a loaded machine the collector thread may not have run at all yet, so
-- the workers closed every state (its queue was full): a few more, one at
-- a time with a pause, until it has closed one (2 s at most).
for _ = 1, 400 do
  if rt.stats().collector.state ~= "on" or rt.stats().collector.closed > 0 then break end
  N = N + 1
  local ok, sum = rt.spawn(short_task, N):join()
  assert(ok and sum == 300 * 301 // 2, "extra short task " .. N)
  rt.sleep(5)
end
stop:send(true)
stop:send(true)
for _, c in ipairs(churners) do
  local ok, n = c:join()
  assert(ok and n > 0)
end
local s = rt.stats()
local by_workers = 0
for _, w in ipairs(s.per_worker) do by_workers = by_workers + w.closed end
if s.collector.state == "on" then
  -- the collector closes them, but for those its bounded queue refused
  assert(s.collector.closed > 0, "the collector closed none")
  assert(s.collector.closed + s.collector.pending + by_workers >= N,
         "closed " .. s.collector.closed .. " + " .. by_workers)
else
  assert(by_workers >= N and s.collector.closed == 0)
end
print("collector ok")
