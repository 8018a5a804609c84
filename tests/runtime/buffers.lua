-- Buffers handed over many times across workers, without a copy; the last
-- receiver frees them.
local rt = require "hakrt"
local HOPS, SIZE = 40, 65536
local a, b = rt.channel(1), rt.channel(1)
local function bouncer(inp, out, hops)
  for _ = 1, hops do
    local buf, n = inp:recv()
    assert(#buf == 65536)
    buf:set(n % #buf + 1, "z")
    out:send(buf, n + 1)
    assert(buf:sent() and not pcall(tostring, buf), "sent buffer still usable")
  end
end
local t1 = rt.spawn(bouncer, a, b, HOPS)
local t2 = rt.spawn(bouncer, b, a, HOPS - 1)
local buf = rt.buffer(SIZE)
buf:set(1, "hello")
a:send(buf, 0)
assert(buf:sent())
local ok, err = pcall(function() return #buf end)
assert(not ok and err:find("buffer was sent"), err)
assert(t1:join() and t2:join())
local back, n = b:recv()
assert(n == 2 * HOPS - 1 and #back == SIZE)
-- every hop wrote one byte: the block is the one that left
assert(back:sub(1, n) == string.rep("z", n) and back:sub(n + 1, n + 1) == "\0", back:sub(1, 8))
-- the account counts the buffer where it lives now
local me
for _, t in ipairs(rt.stats().tasks) do if t.id == rt.self() then me = t end end
assert(me and me.in_use >= SIZE, "buffer not in the receiver's account")
-- the same buffer twice in one message arrives as one buffer
local c = rt.channel(1)
local bb = rt.buffer("twice")
c:send(bb, bb)
local x, y = c:recv()
assert(rawequal(x, y) and tostring(x) == "twice")
-- a buffer sent to a channel nobody reads is freed with it
do local lost = rt.channel(1); lost:send(rt.buffer(1000)) end
collectgarbage()
-- the task's figures count its messages: 3 sent (a, c, lost), 2 received (b, c)
for _, t in ipairs(rt.stats().tasks) do if t.id == rt.self() then me = t end end
assert(me.sent == 3 and me.received == 2, "sent " .. me.sent .. ", received " .. me.received)
print("buffers ok")
