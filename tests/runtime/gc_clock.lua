-- The idle GC counts a task's garbage from its state's last collection,
-- whoever ran it (the GC clock, runtime/hakrt/collector.c).  Each round, a
-- task collects its heap itself (collectgarbage, on its worker), makes
-- garbage, and parks 10 ms: too short for the idle delay, so the collector
-- takes it only when it is due, with three quarters of what makes Lua
-- collect it on its own (generational mode: 15% of its heap; Lua's own
-- minor collections wait here for the heap to double, so only the
-- collector and collectgarbage run collections: a stopped collector would
-- stop the idle GC too).  A tenth of its heap is not due, two fifths are.
local rt = require "hakrt"

local function task(share, rounds)
  local rt = require "hakrt"
  collectgarbage("generational", 100)
  local keep = {}
  for i = 1, 20000 do keep[i] = {i, "k" .. i} end
  for r = 1, rounds do
    collectgarbage()
    local live = collectgarbage("count")
    local junk = {}
    local n = 0
    while collectgarbage("count") < live * (1 + share) do
      n = n + 1
      junk[n] = {r, n}
    end
    junk = nil
    rt.sleep(10)
  end
  for _, t in ipairs(rt.stats().tasks) do
    if t.id == rt.self() then return t.gc.idle_gcs, #keep end
  end
end

local low, high = rt.spawn(task, 0.10, 8), rt.spawn(task, 0.40, 8)
local okl, nl = low:join()
local okh, nh = high:join()
assert(okl, nl)
assert(okh, nh)
assert(nl == 0, string.format("a task Lua had just collected, with a tenth of its heap in garbage, "
                              .. "was collected %d times on the collector", nl))
assert(nh >= 1, "a task with two fifths of its heap in garbage was never collected on the collector")
print("gc_clock ok low=" .. nl .. " high=" .. nh)
