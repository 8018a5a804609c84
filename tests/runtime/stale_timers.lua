-- Receives with long timeouts that messages end early leave no timer
-- behind: rt.stats().timers counts the pending deadlines, and after
-- thousands of such receives none is left (each stale entry held memory
-- and a task reference; and a pending timer keeps a deadlock unreported).
local rt = require "hakrt"
local n = 3000 // (tonumber(arg and arg[1]) or 1)
local a, b = rt.channel(1), rt.channel(1)
local h = rt.spawn(function(a, b, n)
  for i = 1, n do b:send(a:recv(600000)) end
end, a, b, n)
for i = 1, n do
  a:send(i)
  assert(b:recv(600000) == i)
end
assert(h:join())
local left = rt.stats().timers
assert(left == 0, ("%d timers left after %d receives with timeouts"):format(left, 2 * n))
-- a task parked with a timeout has one, until a message ends its wait
local c = rt.channel(1)
local w = rt.spawn(function(c) return c:recv(600000) end, c)
rt.sleep(1) -- whether it has parked by now or not, it has at most one
local during = rt.stats().timers
c:send("late")
assert(select(2, w:join()) == "late")
assert(during <= 1, "timers while one task waits: " .. during)
assert(rt.stats().timers == 0, "a timer left after the wait")
print("stale_timers ok", n)
