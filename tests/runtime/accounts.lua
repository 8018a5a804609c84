-- Every task's account exact after the collector touched it: a task with a
-- heap of a few MiB parks again and again after allocating garbage, so the
-- collector runs its GC between the slices; each time it runs again, Lua's
-- own count and the runtime's account must agree to the byte.
local rt = require "hakrt"
local scale = tonumber((...)) or 1

local function worker(rounds, n)
  local rt = require "hakrt"
  local function own(rt)
    local c = collectgarbage("count") * 1024
    local s = rt.stats()
    for _, t in ipairs(s.tasks) do
      if t.id == rt.self() then return c, t.in_use, t.gc end
    end
  end
  local keep = {}
  for i = 1, n do keep[i] = {i, "s" .. i} end
  own(rt) -- the stack and the figures' tables at their size
  for r = 1, rounds do
    local junk = {}
    for i = 1, 3000 do junk[i] = {r, i, "g" .. i} end
    junk = nil
    rt.sleep(2)
    local c, acct = own(rt)
    assert(c == acct, string.format("round %d: Lua counts %d bytes, the account %d", r, c, acct))
  end
  local _, _, gc = own(rt)
  return gc.idle_gcs
end

local hs = {}
for i = 1, 4 do hs[i] = rt.spawn(worker, 25 // scale, 20000 // scale) end
local idle = 0
for i = 1, 4 do
  local ok, n = hs[i]:join()
  assert(ok, n)
  idle = idle + n
end
print("accounts ok idle_gcs=" .. idle)
