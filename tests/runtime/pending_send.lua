-- A send that blocked in a coroutine left suspended (resumed from a C call
-- that cannot yield, here table.sort's comparison) keeps its message, which
-- holds the buffer's block without owning it yet.  If the buffer is sent
-- elsewhere meanwhile, the old send must fail when it resumes: two messages
-- owning one block were two owners of its bytes, and a double free.
local rt = require "hakrt"
local full = rt.channel(1)
full:send("filler")
local b = rt.buffer("secret")
local co = coroutine.create(function() full:send(b) return "sent" end)
local ok, err = pcall(table.sort, {2, 1}, function(x, y)
  if coroutine.status(co) == "suspended" then coroutine.resume(co) end
  return x < y
end)
assert(not ok and err:find("cannot block"), err)
assert(coroutine.status(co) == "suspended")
local other = rt.channel(1)
other:send(b)
assert(b:sent())
assert(full:recv() == "filler")
ok, err = coroutine.resume(co)
assert(not ok and err:find("cannot send a buffer that was sent"), err)
local none, why = full:recv(0)
assert(none == nil and why == "timeout", tostring(why))
local y = other:recv()
assert(tostring(y) == "secret")
y:set(1, "XXXXXX")
assert(tostring(y) == "XXXXXX")
y = nil
collectgarbage()
collectgarbage()
-- the same buffer left intact: the resumed send goes through
local c2 = rt.channel(1)
c2:send("filler")
local b2 = rt.buffer("kept")
local co2 = coroutine.create(function() c2:send(b2) return "sent" end)
pcall(table.sort, {2, 1}, function(x, y)
  if coroutine.status(co2) == "suspended" then coroutine.resume(co2) end
  return x < y
end)
assert(c2:recv() == "filler")
assert(select(2, coroutine.resume(co2)) == "sent")
assert(b2:sent() and tostring(c2:recv()) == "kept")
print("pending_send ok")
