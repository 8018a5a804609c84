-- Spawned functions: one dumped chunk shared by the tasks of a function,
-- the spawning state's cache switching between functions, and surviving
-- errors; inboxes made on first use, by the task or by a sender.
local rt = require "hakrt"

local function square(i) return i * i end
local function negate(i) return -i end

-- one function many times: every task runs it with its own arguments
local hs = {}
for i = 1, 300 do hs[i] = rt.spawn(square, i) end
for i = 1, 300 do
  local ok, v = hs[i]:join()
  assert(ok and v == i * i, "square " .. i)
end

-- two functions in turn: the cache holds one, each switch dumps again
for i = 1, 100 do hs[i] = rt.spawn(i % 2 == 0 and square or negate, i) end
for i = 1, 100 do
  local ok, v = hs[i]:join()
  assert(ok and v == (i % 2 == 0 and i * i or -i), "alternating " .. i)
end

-- a new closure each time (no cache hit), and a chunk loaded at run time
for i = 1, 50 do hs[i] = rt.spawn(function(x) return x + 1 end, i) end
local made = load("return function(x) return x .. '!' end")()
local hm = rt.spawn(made, "loaded")
for i = 1, 50 do assert(select(2, hs[i]:join()) == i + 1, "closure " .. i) end
assert(select(2, hm:join()) == "loaded!")

-- a refused spawn leaves the cache as it was: the next spawns still right
local up = 5
local ok, err = pcall(rt.spawn, function() return up end)
assert(not ok and err:find("upvalues", 1, true), err)
ok, err = pcall(rt.spawn, square, function() end)
assert(not ok and err:find("argument", 1, true), err)
ok, err = pcall(rt.spawn, negate, print)
assert(not ok, "a C function argument travels")
for i = 1, 20 do hs[i] = rt.spawn(negate, i) end
for i = 1, 20 do assert(select(2, hs[i]:join()) == -i, "after errors " .. i) end

-- inboxes: a task that never asks for one, one that asks twice (the same
-- channel; test_runtime.c posts to one the host makes first)
local silent = rt.spawn(function() return "no inbox" end)
assert(select(2, silent:join()) == "no inbox")
local twice = rt.spawn(function()
  local rt = require "hakrt"
  local a, b = rt.inbox(), rt.inbox()
  return a == b or tostring(a) == tostring(b)
end)
assert(select(2, twice:join()) == true, "rt.inbox() twice gave two channels")

print("spawn_code ok")
