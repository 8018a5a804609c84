-- The soft limit fires before the hard one: with Lua's collector stopped,
-- garbage piles up to the task's limit; at 0.9 of it the runtime runs a
-- full collection at the task's next yield or park, so no allocation is
-- ever refused.  Without a soft limit, allocations fail and only Lua's
-- emergency collection saves the task (failed_allocs > 0).
local rt = require "hakrt"
local scale = tonumber((...)) or 1
local t = rt.spawn(function(rounds)
  local rt = require "hakrt"
  collectgarbage("stop")
  for r = 1, rounds do
    local junk = {}
    for i = 1, 1000 do junk[i] = {i} end
    if r % 2 == 0 then rt.yield() else rt.sleep(0) end
  end
  local s = rt.stats()
  for _, x in ipairs(s.tasks) do
    if x.id == rt.self() then return x.gc.soft_gcs, x.failed_allocs end
  end
end, math.max(300 // scale, 150))
local ok, soft, failed = t:join()
assert(ok, soft)
print(string.format("softlimit ok soft_gcs=%d failed_allocs=%d", soft, failed))
