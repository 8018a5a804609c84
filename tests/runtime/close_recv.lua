-- A finalizer that lua_close runs (the task has ended) receives a buffer
-- and a channel from a channel its task held.  Lua finalizes nothing made
-- while a state closes, so such handles would never give their buffer's
-- block or the channel's reference back (the runner checks that hakmem
-- holds nothing more after the runtime is freed).
local rt = require "hakrt"
for i = 1, 20 do
  local h = rt.spawn(function()
    local rt = require "hakrt"
    local ch = rt.channel(4)
    ch:send(rt.buffer(4096))
    ch:send(rt.channel(1))
    ch:send("last")
    setmetatable({}, {__gc = function()
      for _ = 1, 3 do pcall(ch.recv, ch, 0) end
    end})
    return true
  end)
  assert(h:join())
end
collectgarbage()
print("close_recv ok")
