-- rt.stats()'s GC totals (every task's, finished and live) never go down:
-- a task's figures move from the live tasks' to the finished ones' in the
-- step that unlinks it.  A state closed on the collector used to leave the
-- live list first and join the finished figures only when its close ended
-- (up to 32 ms missing from worker_ms, in most runs).
local rt = require "hakrt"
local scale = tonumber((...)) or 1
local done = rt.channel(1)
local poller = rt.spawn(function(done)
  local rt = require "hakrt"
  local prev, drops, polls = 0, 0, 0
  while #done == 0 do
    local g = rt.stats().gc
    if g.worker_ms < prev then drops = drops + 1 end
    prev = math.max(prev, g.worker_ms)
    polls = polls + 1
    rt.yield()
  end
  return drops, polls
end, done)
local hs = {}
for i = 1, 60 // scale do
  hs[i] = rt.spawn(function()
    local t = {}
    for j = 1, 30000 do t[j] = {j} end
    for j = 1, 30000 do t[j] = {j} end
    local keep = {}
    for j = 1, 100000 do keep[j] = {j} end -- a close that takes a while
  end)
end
for _, h in ipairs(hs) do assert(h:join()) end
done:send(true)
local ok, drops, polls = poller:join()
assert(ok, drops)
assert(drops == 0, string.format("the GC totals went down %d times in %d polls", drops, polls))
print("stats_totals ok polls=" .. polls)
