-- Requires hakmem in the middle of a run: the state already holds tables
-- and strings made by its first allocator; they are used, grown, shrunk
-- and freed after the switch, and every result is checked.
-- Run by tests/test_module.c under Debian's lua5.4 (LUA_CPATH pointing at
-- the built lua/hakmem.so) and under hklua.

local N = 20000
local old = {}
for i = 1, N do
  old[i] = {i, "s" .. i, string.rep("p", i % 300)}
end
local words = {}
for w in ("the quick brown fox jumps over the lazy dog"):gmatch("%a+") do
  words[#words + 1] = w
end
local before = collectgarbage("count") * 1024

local hakmem = require "hakmem"
assert(type(hakmem.stats) == "function")
local s0 = hakmem.stats()
-- Right after the switch: what the state held is all foreign (or, in a
-- state that already ran on hakmem, nothing is).
assert(s0.foreign <= s0.in_use, "foreign > in_use")
assert(s0.in_use >= before * 0.9, "in_use " .. s0.in_use .. " < Lua's " .. before)

-- Use the old blocks: read, grow (realloc of foreign table parts), shrink.
local sum = 0
for i = 1, N do
  local t = old[i]
  sum = sum + t[1] + #t[2] + #t[3]
  for j = 4, 20 do t[j] = j end          -- grows the array part
end
for i = 1, N, 2 do old[i] = nil end       -- frees half of the old objects
for i = 2, N, 2 do
  local t = old[i]
  for j = 20, 5, -1 do t[j] = nil end    -- rehash may shrink
  t.k = "key" .. i                         -- hash part: new block
end
collectgarbage()
collectgarbage()

local check = 0
for i = 2, N, 2 do
  local t = old[i]
  assert(t[1] == i and t[2] == "s" .. i and #t[3] == i % 300 and t[4] == 4 and t[5] == nil)
  assert(t.k == "key" .. i)
  check = check + t[1]
end
assert(check == (N // 2) * (N // 2 + 1), "bad checksum " .. check)
assert(table.concat(words, " ") == "the quick brown fox jumps over the lazy dog")

-- New work after the switch.
local new = {}
for i = 1, N do new[i] = tostring(i) .. "n" end
local cat = table.concat(new, ",", 1, 100)
assert(#cat > 100)

local s1 = hakmem.stats()
assert(s1.foreign <= s0.foreign, "foreign bytes grew")
if s0.foreign > 0 then
  assert(s1.foreign < s0.foreign, "no foreign block was freed or moved")
end
local lua_count = collectgarbage("count") * 1024
local s2 = hakmem.stats()
assert(s2.in_use == lua_count, "account " .. s2.in_use .. " ~= Lua's count " .. lua_count)
assert(s2.bytes_by_type.table > 0 and s2.count_by_type.string > 0)
assert(s2.heap.in_use > 0)
assert(math.type(s2.heap.remote_pending) == "integer" and s2.heap.remote_pending >= 0)
assert(math.type(s2.heap.free_in_pages) == "integer" and s2.heap.free_in_pages >= 0)

-- The limit works in this state too.
hakmem.limit(s2.in_use + 256 * 1024)
local ok, err = pcall(function()
  local t = {}
  for i = 1, 1e6 do t[i] = string.rep("x", 64) .. i end
end)
assert(not ok and err == "not enough memory", tostring(err))
hakmem.limit(0)
collectgarbage()
assert(type(hakmem.collect()) == "number")

print(sum, check, #new)
print("module ok")
