-- Finalizers that run while the task's code does not: the collector's idle
-- GC of a parked task, or (--collector=off, run by the test with a limit)
-- the soft limit's full collection as the task parks.  The task is in a
-- channel's wait queue then, and that wait is its code's: a finalizer's
-- send on that channel must wake it (it used to take it out of the queue
-- and wake nobody), and a finalizer may not wait itself (in a coroutine it
-- used to overwrite the task's wait, and lose another waiter).
local rt = require "hakrt"
local scale = tonumber((...)) or 1
local limited = false
for _, t in ipairs(rt.stats().tasks) do
  if t.id == rt.self() and t.limit > 0 then limited = true end
end

-- A heap the collector takes (or, limited, one over 0.9 of 8 MiB): kept
-- data, a collection (the GC clock ticks), then garbage.
local function heap_with_garbage()
  local keep, n = {}, 0
  local target = limited and 6.6 * 1024 or 3000
  while collectgarbage("count") < target do n = n + 1; keep[n] = {n, tostring(n)} end
  collectgarbage()
  local base = collectgarbage("count")
  local junk = limited and 1100 or 300
  while collectgarbage("count") < base + junk do local g = {1, 2} end
  return keep
end

-- 1. A finalizer sends on the channel its task waits on.
local ch = rt.channel(4)
local keep = heap_with_garbage()
setmetatable({}, {__gc = function() ch:send("from finalizer") end})
local t0 = rt.now()
local v = ch:recv(5000)
assert(v == "from finalizer", "the finalizer's message was not received: " .. tostring(v))
assert(rt.now() - t0 < 2, string.format("received only after %.1f s", rt.now() - t0))
keep = nil
collectgarbage()

if not limited then
  -- 2. A finalizer that waits, in a coroutine: refused; the task's own
  -- wait, and another task's in the same queue, stay.
  local c1, c2 = rt.channel(4), rt.channel(4)
  local u = rt.spawn(function(c1)
    local rt = require "hakrt"
    rt.sleep(20)
    return c1:recv()
  end, c1)
  local why
  local helper = rt.spawn(function(c1)
    local rt = require "hakrt"
    rt.sleep(300)
    c1:send("one")
    c1:send("two")
  end, c1)
  keep = heap_with_garbage()
  setmetatable({}, {__gc = function()
    local ok, err = pcall(coroutine.wrap(function() return c2:recv() end))
    why = err
  end})
  local got = c1:recv()
  assert(got == "one" or got == "two", tostring(got))
  local okh = helper:join()
  local oku, vu = u:join()
  assert(okh and oku and (vu == "one" or vu == "two") and vu ~= got, tostring(vu))
  assert(#c1 == 0)
  if why ~= nil then assert(tostring(why):find("cannot block", 1, true), tostring(why)) end
end
print("finalizer_waits ok")
