-- A finished task's inbox stays readable through every handle of it: the
-- messages queued there are dropped only when the finished task's own
-- reference is the last one (then nobody can receive them).  Once the
-- task record has let its reference go, two handles are two readers.
local rt = require "hakrt"
local pass, go = rt.channel(4), rt.channel(4)
local h = rt.spawn(function(pass, go)
  local rt = require "hakrt"
  local inbox = rt.inbox()
  pass:send(inbox, inbox)
  go:recv()
end, pass, go)
local i1, i2 = pass:recv()
i1:send("hello")
i1:send("world")
go:send(true)
assert(h:join())
assert(#i2 == 2)
h = nil
collectgarbage(); collectgarbage() -- the task record goes, and its reference
assert(#i2 == 2)
i1 = nil
collectgarbage(); collectgarbage()
assert(#i2 == 2, #i2)
assert(i2:recv(0) == "hello")
-- the handles from two messages: releasing one keeps the other's
local pass2, go2 = rt.channel(4), rt.channel(4)
local h2 = rt.spawn(function(out, go)
  local rt = require "hakrt"
  out:send(rt.inbox())
  out:send(rt.inbox())
  go:recv()
end, pass2, go2)
local a, b = pass2:recv(), pass2:recv()
a:send("kept")
go2:send(true)
assert(h2:join())
h2 = nil
collectgarbage(); collectgarbage()
a = nil
collectgarbage(); collectgarbage()
assert(b:recv(0) == "kept")
print("inbox_after_owner ok")
