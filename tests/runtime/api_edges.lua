-- Edges of the Lua API: b:sub follows string.sub for every i, j (0, below
-- -#b, math.mininteger, math.maxinteger); b:set keeps to 1-based positions
-- that fit; rt.spawn_with's errors name the option's field; rt.inbox() in a
-- finalizer run as the task's state closes says the task has ended.
local rt = require "hakrt"
local MIN, MAX = math.mininteger, math.maxinteger

local function raises(pattern, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "no error; expected " .. pattern)
  assert(type(err) == "string" and err:find(pattern, 1, true), "got: " .. tostring(err) ..
         "\nexpected: " .. pattern)
end

-- b:sub(i, j) == string.sub(s, i, j) over the same bytes
local positions = {MIN, MIN + 1, -(1 << 40), MAX - 1, MAX}
for p = -12, 12 do positions[#positions + 1] = p end
for _, s in ipairs{"h", "hello", "hello\0world", string.rep("x", 12)} do
  local b = rt.buffer(s)
  assert(b:sub() == s and b:sub(1) == s and tostring(b) == s)
  for _, i in ipairs(positions) do
    assert(b:sub(i) == s:sub(i), ("sub(%d) of %q"):format(i, s))
    for _, j in ipairs(positions) do
      local got, want = b:sub(i, j), s:sub(i, j)
      assert(got == want, ("sub(%d, %d) of %q: %q, string.sub: %q"):format(i, j, s, got, want))
    end
  end
  assert(b:sub(1.0, 2.0) == s:sub(1, 2))
  raises("number has no integer representation", b.sub, b, 1.5)
  raises("number expected, got table", b.sub, b, 1, {})
end
-- no buffer holds zero bytes; a sent one has none to read
raises("a buffer holds at least one byte", rt.buffer, "")
raises("a buffer holds at least one byte", rt.buffer, 0)
do
  local b, ch = rt.buffer("abc"), rt.channel(1)
  ch:send(b)
  raises("buffer was sent", b.sub, b, 1, 0)
  raises("buffer was sent", b.set, b, 1, "x")
  assert(ch:recv():sub(2, -2) == "b")
end

-- b:set(i, s): 1 <= i <= #b and s fits; no negative positions
do
  local b = rt.buffer(4)
  for _, i in ipairs{0, -1, -4, 5, MIN, MAX} do
    raises("position out of range", b.set, b, i, "a")
  end
  raises("does not fit in the buffer", b.set, b, 4, "ab")
  raises("does not fit in the buffer", b.set, b, 1, "abcde")
  assert(b:set(4, "d") == b and b:set(1, "abc"):sub() == "abcd")
  assert(b:set(2, "") and tostring(b) == "abcd")
end

-- rt.spawn_with: each field's error names it
local function f() return 7 end
for _, case in ipairs{
  {{limit = "x"}, "field 'limit': number expected, got string"},
  {{limit = {}}, "field 'limit': number expected, got table"},
  {{limit = true}, "field 'limit': number expected, got boolean"},
  {{limit = 1.5}, "field 'limit': number has no integer representation"},
  {{limit = 0 / 0}, "field 'limit': number has no integer representation"},
  {{limit = 1e300}, "field 'limit': number has no integer representation"},
  {{limit = -1e300}, "field 'limit': number has no integer representation"},
  {{limit = 1 / 0}, "field 'limit': number has no integer representation"},
  {{limit = 2.0 ^ 63}, "field 'limit': number has no integer representation"},
  {{limit = -1}, "field 'limit': must be >= 0"},
  {{limit = MIN}, "field 'limit': must be >= 0"},
  {{limit = -(2.0 ^ 63)}, "field 'limit': must be >= 0"},
  {{private_heap = "yes"}, "field 'private_heap': boolean expected, got string"},
  {{private_heap = 1}, "field 'private_heap': boolean expected, got number"},
} do
  raises("bad argument #1 to ", rt.spawn_with, case[1], f)
  raises(case[2], rt.spawn_with, case[1], f)
end
raises("table expected, got nil", rt.spawn_with, nil, f)
for _, opts in ipairs{{}, {limit = 0}, {limit = 8 << 20}, {limit = 8.0 * 2 ^ 20},
                      {limit = "8388608"}, {private_heap = false},
                      {limit = 8 << 20, private_heap = true}} do
  local ok, v = rt.spawn_with(opts, f):join()
  assert(ok and v == 7)
end

-- rt.inbox() from a finalizer that runs when the task's state closes (its
-- code has ended, its inbox is closed): the true reason, not "not enough
-- memory", whether or not the task made its inbox while its code ran
local ch = rt.channel(4)
for _, made in ipairs{false, true} do
  local h = rt.spawn(function(ch, made)
    local rt = require "hakrt"
    if made then assert(rt.inbox() == rt.inbox()) end
    FIN = setmetatable({}, {__gc = function() ch:send(pcall(rt.inbox)) end})
    return "done"
  end, ch, made)
  assert(select(2, h:join()) == "done")
  local ok, err = ch:recv(10000)
  assert(ok == false, "finalizer: " .. tostring(ok) .. " " .. tostring(err))
  assert(err:find("the task has ended: its inbox is closed", 1, true), err)
end
-- the same for the calls that make a handle: its reference would never be
-- let go (the runner checks hakmem holds nothing after the runtime)
for _, what in ipairs{"channel", "buffer", "task"} do
  local h = rt.spawn(function(ch, what)
    local rt = require "hakrt"
    local make = {channel = function() return rt.channel(2) end,
                  buffer = function() return rt.buffer(100) end,
                  task = function() return rt.spawn(function() end) end}
    FIN = setmetatable({}, {__gc = function() ch:send(pcall(make[what])) end})
    return "done"
  end, ch, what)
  assert(select(2, h:join()) == "done")
  local ok, err = ch:recv(10000)
  assert(ok == false, what .. " made at close")
  assert(err:find("the task has ended: cannot make a " .. what .. " now", 1, true), err)
end

print("api_edges ok")
