-- spares.lua -- tasks spawned one at a time, each joined before the next:
-- the workers go idle in between, so with --spare-states=on the next task
-- starts on a state its worker made ahead.  Run with --task-mem-limit: a
-- task on a spare state has the runtime's limit like one on a state of its
-- own; tasks of another limit or heap kind start on states of their own.
local rt = require "hakrt"

local function work(n)
  local t = {}
  for i = 1, n do t[i] = {i, tostring(i)} end
  local ok, err = pcall(function()
    local big = {}
    for i = 1, 1e6 do big[i] = ("x"):rep(64) .. i end
  end)
  assert(not ok and tostring(err):find("not enough memory"), "no limit: " .. tostring(err))
  return #t + #string.format("%d", n) -- the libraries are there
end

local total = 0
for i = 1, 20 do
  rt.sleep(2) -- the workers are idle meanwhile
  local ok, n = rt.spawn(work, 100 + i):join()
  assert(ok, n)
  total = total + n
end
local ok, n = rt.spawn_with({limit = 3 << 20}, work, 5):join()
assert(ok, n)
local ok2, n2 = rt.spawn_with({private_heap = true}, work, 7):join()
assert(ok2, n2)
print("spares ok", total + n + n2)
