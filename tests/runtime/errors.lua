-- Errors stay in their task; limits too.
local rt = require "hakrt"
local bad = rt.spawn(function() local t = nil; return t.x end)
local good = rt.spawn(function() local rt = require "hakrt"; rt.sleep(5); return "fine" end)
local ok, err = bad:join()
assert(not ok and err:find("attempt to index") and err:find("stack traceback"), err)
assert(select(2, good:join()) == "fine")
local obj = rt.spawn(function() error({code = 7}) end)
local ok2, err2 = obj:join()
assert(not ok2 and err2:find("error object is a table value"), err2)
-- a limit per spawn: the task gets "not enough memory", handles it, goes on
local lim = rt.spawn_with({limit = 2 * 1024 * 1024}, function()
  local ok, e = pcall(function()
    local t = {}
    for i = 1, 1e7 do t[i] = string.rep("y", 100) .. i end
  end)
  assert(not ok and tostring(e):find("not enough memory"), tostring(e))
  collectgarbage()
  local small = {}
  for i = 1, 100 do small[i] = i end
  local rt = require "hakrt"
  local ok3, e3 = pcall(rt.buffer, 4 * 1024 * 1024)
  assert(not ok3 and e3:find("not enough memory"), e3)
  return #small
end)
local ok4, n = lim:join()
assert(ok4 and n == 100, tostring(n))
-- join itself, spawn a C function, blocking where it cannot yield
local me = rt.spawn(function() return 1 end)
assert(me:join())
assert(not pcall(rt.spawn, print))
local ch = rt.channel()
local okc, ec = pcall(table.sort, {3, 2, 1}, function(a, b) ch:recv() return a < b end)
assert(not okc and ec:find("cannot block here"), ec)
-- blocking inside a user coroutine works
local inner = rt.spawn(function(ch)
  local co = coroutine.wrap(function() return ch:recv() end)
  return co()
end, ch)
ch:send("through the coroutine")
assert(select(2, inner:join()) == "through the coroutine")
print("errors ok")
