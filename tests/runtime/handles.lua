-- handles.lua -- task handles travel in messages: a spawner sends the
-- handles of the tasks it spawns to the main task, which joins them;
-- every task that joins a task gets its results, a handle received as a
-- spawn argument included; a result cannot carry a handle; a task's own
-- handle left unread in its inbox goes with the task (the runner checks
-- that hakmem holds nothing after hakrt_free).
local rt = require "hakrt"

-- Handles over a channel, joined by the task that received them.
local ch = rt.channel(4)
local spawner = rt.spawn(function(ch, n)
  local rt = require "hakrt"
  for i = 1, n do ch:send(rt.spawn(function(x) return x * x end, i)) end
  ch:send(false)
  return n
end, ch, 8)
local sum, seen = 0, {}
while true do
  local h = ch:recv()
  if not h then break end
  assert(tostring(h):match("^task %d+$"), tostring(h))
  assert(not seen[h:id()], "a task's handle came twice")
  seen[h:id()] = true
  local ok, v = h:join()
  assert(ok, v)
  sum = sum + v
end
local ok, n = spawner:join()
assert(ok and n == 8, tostring(n))
assert(sum == 204, "sum of squares " .. sum)

-- Two joiners of one task, one through a handle it got as an argument.
local target = rt.spawn(function()
  local rt = require "hakrt"
  rt.sleep(5)
  return "done", 42
end)
local joiner = rt.spawn(function(h)
  local ok, a, b = h:join()
  assert(ok, a)
  return a .. b
end, target)
local ok1, a, b = target:join()
assert(ok1 and a == "done" and b == 42, tostring(a))
local ok2, s = joiner:join()
assert(ok2 and s == "done42", tostring(s))

-- A handle in a table, and the same handle twice in one message.
local box = rt.channel(1)
box:send({target, {target}})
local got = box:recv()
assert(got[1]:id() == target:id() and got[2][1]:id() == target:id())
assert(select(2, got[2][1]:join()) == "done")

-- A result cannot carry a handle: it could be the task's own.
local bad = rt.spawn(function(h) return h end, target)
local ok3, err = bad:join()
assert(not ok3 and tostring(err):find("cannot return a task handle", 1, true), tostring(err))

-- A task's own handle sent to its inbox and never received.
local reply = rt.channel(1)
local lonely = rt.spawn(function(reply)
  local rt = require "hakrt"
  reply:send(rt.inbox())
  rt.sleep(5)
  return true
end, reply)
local inbox = reply:recv()
inbox:send(lonely)
inbox = nil
assert(lonely:join())
lonely, got = nil, nil
collectgarbage()
print("handles ok", sum)
