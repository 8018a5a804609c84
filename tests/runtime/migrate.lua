-- Tasks move between workers at every yield; their accounts stay exact
-- (Lua's own count) wherever their blocks were allocated and freed.
local rt = require "hakrt"
local function churn(rounds)
  local rt = require "hakrt"
  local keep = {}
  for r = 1, rounds do
    local t = {}
    for i = 1, 200 do t[i] = {i, tostring(i)} end
    keep[r % 8] = t
    rt.yield()
  end
  collectgarbage()
  -- Lua's count, then the account (rt.stats reads it before allocating)
  local lua_bytes = math.floor(collectgarbage("count") * 1024 + 0.5)
  local me
  for _, t in ipairs(rt.stats().tasks) do if t.id == rt.self() then me = t end end
  return me.in_use, lua_bytes, me.resumes
end
local hs = {}
for i = 1, 4 do hs[i] = rt.spawn(churn, 300) end
for i = 1, 4 do
  local ok, in_use, lua_bytes, resumes = hs[i]:join()
  assert(ok, in_use)
  assert(in_use == lua_bytes, ("account %d, Lua counts %d"):format(in_use, lua_bytes))
  assert(resumes >= 300)
end
local moved = 0
for _, w in ipairs(rt.stats().per_worker) do moved = moved + w.migrations end
if rt.workers() > 1 then assert(moved > 0, "no task migrated") end
print("migrate ok", moved)
