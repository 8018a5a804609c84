-- States opened ahead by the collector (runtime/hakrt/ready.c): waves of
-- short tasks take them; a task whose limit is below what the libraries
-- hold, or that asks for a private heap the runtime does not give every
-- task, opens its own (and the first fails exactly as without the pool);
-- after a quiet second the pool is empty again.
local rt = require "hakrt"
local scale = tonumber((...)) or 1
local N = 60 // scale

local function short(i)
  local t = {}
  for j = 1, 50 do t[j] = tostring(i * j) end
  return #t
end

for _ = 1, 3 do
  local hs = {}
  for i = 1, N do hs[i] = rt.spawn(short, i) end
  for i = 1, N do
    local ok, n = hs[i]:join()
    assert(ok and n == 50, "short task " .. i)
  end
  rt.sleep(20) -- the collector refills the pool between waves
end
local c = rt.stats().collector
local on = c.state == "on"
if on then
  assert(c.states_taken > 0, "no task took a ready state")
  assert(c.states_opened >= c.states_taken and c.states_ready <= c.states_opened)
else
  assert(c.states_opened == 0 and c.states_taken == 0 and c.states_ready == 0)
end

local ok, err = rt.spawn_with({limit = 4096}, short, 1):join()
assert(not ok and err:find("not enough memory", 1, true), tostring(err))
local ok2, n = rt.spawn_with({private_heap = true}, short, 2):join()
assert(ok2 and n == 50, tostring(n))

if on then
  local left
  for _ = 1, 60 do
    left = rt.stats().collector.states_ready
    if left == 0 then break end
    rt.sleep(100)
  end
  assert(left == 0, "after a quiet second the pool still holds " .. left .. " states")
end
print("ready ok")
