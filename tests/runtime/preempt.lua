-- A task that computes without blocking must not starve the others: on one
-- worker, the others finish while it spins.
local rt = require "hakrt"
local stop = rt.channel(1)
local spinner = rt.spawn(function(stop)
  local spins = 0
  while true do
    for _ = 1, 1000 do spins = spins + 1 end
    if stop:recv(0) then return spins end -- a poll: never blocks
  end
end, stop)
local hs = {}
for i = 1, 3 do
  hs[i] = rt.spawn(function(i)
    local s = 0
    for j = 1, 200000 do s = s + j end
    return i, s
  end, i)
end
for i = 1, 3 do
  local ok, id, s = hs[i]:join()
  assert(ok and id == i and s == 200000 * 200001 // 2)
end
rt.sleep(20)
stop:send(true)
local ok, spins = spinner:join()
assert(ok and spins > 0)
-- a spin inside a user coroutine is preempted too
local c = rt.spawn(function()
  local co = coroutine.wrap(function() local t0 = os.clock() while os.clock() - t0 < 0.05 do end coroutine.yield("inner") end)
  return co()
end)
local d = rt.spawn(function() return "other" end)
assert(select(2, d:join()) == "other")
assert(select(2, c:join()) == "inner")
print("preempt ok")
