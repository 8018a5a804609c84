-- script.lua -- an allocation-heavy Lua script that checks its own results;
-- tests/override/run.py runs it with Debian's lua5.4, with and without
-- LD_PRELOAD=libhakmem-override.so, and compares what it prints.
--
-- Every line it prints is a value computed from the objects it built, so a
-- block corrupted by the allocator changes the output or raises an error.
-- The last line is the peak of Lua's own memory count (in KiB), which
-- run.py compares with hakmem's statistics.

local peak = 0
local function sample()
  local kb = collectgarbage("count")
  if kb > peak then peak = kb end
end

-- Binary trees: many 56-byte tables and small arrays.
local function make(depth)
  if depth == 0 then return {} end
  depth = depth - 1
  return {make(depth), make(depth)}
end
local function check(t)
  if t[1] then return 1 + check(t[1]) + check(t[2]) end
  return 1
end
local nodes = 0
local long_lived = make(14)
for i = 1, 8 do
  nodes = nodes + check(make(12))
  sample()
end
print("trees", nodes, check(long_lived))

-- Strings: concatenation, interning, gsub, table.concat.
local parts = {}
for i = 1, 50000 do
  parts[#parts + 1] = string.format("%d:%s", i, string.rep("x", i % 17))
end
local joined = table.concat(parts, ",")
local count = select(2, joined:gsub("x+", function(s) return s:upper() end))
sample()
print("strings", #joined, count, joined:sub(1, 24))

-- A table that grows and shrinks (hash and array parts reallocated).
local t = {}
for i = 1, 200000 do t[i] = i * 2 end
for i = 1, 200000, 2 do t[i] = nil end
local sum = 0
for _, v in pairs(t) do sum = sum + v end
for k in pairs(t) do t[k] = nil end
for i = 1, 100000 do t["k" .. i] = i end
local hsum = 0
for _, v in pairs(t) do hsum = hsum + v end
sample()
print("tables", sum, hsum)

-- Closures, upvalues and coroutines.
local function counter()
  local n = 0
  return function() n = n + 1; return n end
end
local total = 0
for i = 1, 20000 do
  local c = counter()
  c(); c()
  total = total + c()
end
local cos = {}
for i = 1, 2000 do
  cos[i] = coroutine.wrap(function(a)
    local acc = a
    for j = 1, 5 do acc = acc + coroutine.yield(acc) end
    return acc
  end)
end
local csum = 0
for i = 1, 2000 do
  local v = cos[i](i)
  for j = 1, 5 do v = cos[i](j) end
  csum = csum + v
end
sample()
print("closures", total, csum)

-- A large live set, then garbage: the memory must come back.
local big = {}
for i = 1, 300000 do big[i] = {i, tostring(i)} end
sample()
local bsum = 0
for i = 1, #big, 1000 do bsum = bsum + big[i][1] + #big[i][2] end
big = nil
collectgarbage()
collectgarbage()
print("big", bsum)
print("peak_kb", math.floor(peak))
