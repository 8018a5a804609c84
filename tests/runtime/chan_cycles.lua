-- Channels that only messages hold: a channel sent into itself, two
-- channels holding each other, an inbox holding its own handle twice.  No
-- count ever reaches zero for them; the runtime frees them when it is
-- freed (the runner checks that hakmem holds nothing more than before).
local rt = require "hakrt"
for i = 1, 50 do
  local ch = rt.channel(1)
  ch:send(ch, ("x"):rep(1000))
  local a, b = rt.channel(2), rt.channel(2)
  a:send(b, rt.buffer(100))
  b:send(a)
  local h = rt.spawn(function(out)
    local rt = require "hakrt"
    local me = rt.inbox()
    me:send(me, me)
    out:send(true)
  end, a)
  assert(h:join())
end
collectgarbage()
print("chan_cycles ok")
