-- A finalizer that lua_close runs keeps trying to receive a message that
-- holds a buffer, while this task waits for the same message, or sends
-- into the same full channel.  The refused message must stay where it is:
-- taken out and put back, it left a receiver blocked with the message in
-- the channel (a deadlock report, or a wait to the timeout) and let a
-- sender put a second message into a channel of capacity 1.
local rt = require "hakrt"

local function closing_receiver(ch, started, done)
  return rt.spawn(function(ch, started, done)
    setmetatable({}, {__gc = function()
      started:send(true)
      for _ = 1, 20000 do pcall(ch.recv, ch, 0) end
      if done then done:send(true) end
    end})
    return true
  end, ch, started, done)
end

-- 1. A receiver beside the refused finalizer gets the message at once.
for round = 1, 5 do
  local ch, started = rt.channel(4), rt.channel(1)
  ch:send(rt.buffer(16))
  closing_receiver(ch, started)
  started:recv()
  local t0 = rt.now()
  local b, why = ch:recv(2000)
  assert(b ~= nil, "round " .. round .. ": the buffer was not received: " .. tostring(why))
  assert(#b == 16)
  assert(rt.now() - t0 < 1, string.format("round %d: received after %.2f s", round, rt.now() - t0))
end

-- 2. A full channel stays at its capacity.
for round = 1, 3 do
  local ch, started, done = rt.channel(1), rt.channel(1), rt.channel(1)
  ch:send(rt.buffer(16))
  closing_receiver(ch, started, done)
  started:recv()
  local sender = rt.spawn(function(ch) ch:send("x"); return true end, ch)
  done:recv()
  assert(#ch == 1, "round " .. round .. ": " .. #ch .. " messages in a channel of capacity 1")
  local b = ch:recv(2000)
  assert(b ~= nil and #b == 16, "round " .. round .. ": not the buffer first")
  assert(ch:recv(2000) == "x", "round " .. round .. ": the sender's message is missing")
  assert(sender:join())
end
print("close_recv_waiters ok")
