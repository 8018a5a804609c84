-- collectgarbage("stop") holds for the runtime's idle GC: a parked task
-- whose script stopped its collector is collected only when it asks (its
-- garbage, and its finalizers, wait).  The soft limit still collects it,
-- as Lua's own emergency collection would (softlimit.lua).
local rt = require "hakrt"
collectgarbage("stop")
local ran = 0
setmetatable({}, {__gc = function() ran = ran + 1 end})
for i = 1, 20000 do local g = {i, tostring(i)} end -- ~1.5 MB of garbage
local kb = collectgarbage("count")
rt.sleep(200)
assert(ran == 0, "a finalizer ran in a stopped state")
assert(collectgarbage("count") >= kb, "a stopped state was collected")
assert(rt.stats().collector.idle_gcs == 0, "idle GC of a stopped state")
collectgarbage("restart")
collectgarbage()
assert(ran == 1)
print("gc_stopped ok")
