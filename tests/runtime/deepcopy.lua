-- Values copied between states: kinds kept apart, tables deeply copied with
-- their sharing and cycles, refused values named by position.
local rt = require "hakrt"
local ch = rt.channel(4)

local shared = {"shared"}
local orig = {
  int = 3, float = 3.0, big = math.maxinteger, neg = -0.0, str = "a\0b",
  t = true, f = false, list = {1, 2, 3, {4, {5}}},
  [1.5] = "float key", [10] = "int key", [true] = "bool key",
  a = shared, b = shared,
}
orig.self = orig
local child = rt.spawn(function(ch)
  local v, n, s = ch:recv()
  assert(n == nil and s == "end", "extra values")
  assert(math.type(v.int) == "integer" and math.type(v.float) == "float", "number kinds")
  assert(v.big == math.maxinteger and 1 / v.neg < 0, "number values")
  assert(v.str == "a\0b" and v.t == true and v.f == false, "scalars")
  assert(v.list[4][2][1] == 5 and #v.list == 4, "nesting")
  assert(v[1.5] == "float key" and v[10] == "int key" and v[true] == "bool key", "keys")
  assert(v.a == v.b and v.a[1] == "shared", "sharing lost")
  assert(v.self == v, "cycle lost")
  assert(getmetatable(v) == nil)
  return "copied"
end, ch)
ch:send(orig, nil, "end")
assert(select(2, child:join()) == "copied")

local function refused(pattern, ...)
  local ok, err = pcall(ch.send, ch, ...)
  assert(not ok, "should refuse")
  assert(err:find(pattern, 1, true), "message was: " .. err)
end
refused("cannot send a function (value 1)", print)
refused("cannot send a function (value 2, at [\"x\"][2])", 1, {x = {1, function() end}})
refused("cannot send a function (value 1, at [1.5])", {[1.5] = print})
refused("cannot send a thread (value 1, at [\"a\"][2][0.25])", {a = {[2] = {[0.25] = coroutine.create(print)}}})
refused("cannot send a userdata (value 1)", io.stdout)
refused("cannot send a thread (value 1)", coroutine.create(print))
local deep = {}
local cur = deep
for i = 1, 150 do cur[1] = {}; cur = cur[1] end
refused("nested too deeply", deep)
assert(#ch == 0, "a refused message was queued")

-- Spawn arguments and results travel the same way.
local h = rt.spawn(function(t) return t.x, {y = t.x * 2} end, {x = 21})
local ok, x, t = h:join()
assert(ok and x == 21 and t.y == 42)
local ok2, x2 = h:join() -- join twice: the same results
assert(ok2 and x2 == 21)
local bad = rt.spawn(function() return print end)
local okb, err = bad:join()
assert(not okb and err:find("cannot send a function (result 1)", 1, true), err)
assert(not pcall(rt.spawn, function() return shared end), "upvalues must be refused")
print("deepcopy ok")
