-- Channel behaviour: timeouts, close, sends on a closed channel, channels
-- inside messages, backpressure.
local rt = require "hakrt"
local ch = rt.channel(2)
local v, why = ch:recv(10)
assert(v == nil and why == "timeout")
local v0, why0 = ch:recv(0)
assert(v0 == nil and why0 == "timeout")
ch:send(1); ch:send(2)
assert(#ch == 2)
-- full: a sender blocks until the receiver makes room
local sender = rt.spawn(function(ch) ch:send(3); return "sent" end, ch)
rt.sleep(10)
assert(#ch == 2, "a full channel took a message")
assert(ch:recv() == 1)
assert(select(2, sender:join()) == "sent")
assert(ch:recv() == 2 and ch:recv() == 3)
ch:close()
local v2, why2 = ch:recv()
assert(v2 == nil and why2 == "closed")
local ok, err = pcall(ch.send, ch, 4)
assert(not ok and err:find("closed"), err)
-- a channel sent in a message is the same channel
local reply = rt.channel(1)
local req = rt.channel(1)
local server = rt.spawn(function(req)
  for _ = 1, 3 do
    local back, x = req:recv()
    back:send(x * x)
  end
end, req)
for x = 1, 3 do req:send(reply, x); assert(reply:recv() == x * x) end
assert(server:join())
local box = rt.channel(1)
box:send(reply)
assert(box:recv() == reply, "channel identity")
-- a receiver blocked on a channel wakes when it is closed
local c2 = rt.channel(1)
local waiter = rt.spawn(function(c) return select(2, c:recv()) end, c2)
rt.sleep(5)
c2:close()
assert(select(2, waiter:join()) == "closed")
print("channels ok")
