-- closures.lua -- closures and upvalues: counters that share an upvalue,
-- adders made in loops (a fresh upvalue per iteration), function
-- composition chains, memoised functions, and callbacks kept in tables.
-- Every closure is a 40-56 B block and every open upvalue that escapes
-- becomes a 40 B UpVal: the Lua shapes that a general malloc rounds up.
--
-- Usage: lua closures.lua [rounds]   (default 12000)
-- Self-check: each result against its closed form.

local N = tonumber(arg and arg[1]) or 12000

local function fail(fmt, ...)
  error("closures: " .. string.format(fmt, ...))
end

local function make_counter()
  local n = 0
  return function() n = n + 1; return n end, function() return n end
end

local function compose(f, g) return function(x) return f(g(x)) end end

local function memoize(f)
  local cache = {}
  return function(x)
    local v = cache[x]
    if v == nil then v = f(x); cache[x] = v end
    return v
  end
end

local checksum = 0
for round = 1, N do
  -- Adders: one closure and one upvalue per iteration.
  local adders = {}
  for i = 1, 200 do adders[i] = function(x) return x + i end end
  local s = 0
  for i = 1, 200 do s = adders[i](s) end
  if s ~= 200 * 201 // 2 then fail("round %d: adders %d", round, s) end

  -- Counters sharing an upvalue between two closures.
  local inc, get = make_counter()
  for _ = 1, 100 do inc() end
  if get() ~= 100 then fail("round %d: counter %d", round, get()) end

  -- A composition chain of 50 closures: x + 1 applied 50 times, doubled.
  local f = function(x) return x end
  for _ = 1, 50 do f = compose(function(x) return x + 1 end, f) end
  local g = compose(function(x) return x * 2 end, f)
  if g(round) ~= 2 * (round + 50) then fail("round %d: composition", round) end

  -- Memoised Fibonacci: the recursion goes through the memo closure.
  local fib
  fib = memoize(function(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end)
  if fib(60) ~= 1548008755920 then fail("round %d: fib(60) = %d", round, fib(60)) end

  -- Callbacks registered in a table, each closing over its own record.
  local handlers = {}
  for i = 1, 100 do
    local rec = { id = i, hits = 0 }
    handlers[i] = function(v) rec.hits = rec.hits + v; return rec end
  end
  local hs = 0
  for i = 1, 100 do hs = hs + handlers[i](i).hits end
  if hs ~= 5050 then fail("round %d: handlers %d", round, hs) end

  checksum = (checksum + s + get() + g(round) + hs) % 1000000007
end

print(string.format("closures %d checksum %d", N, checksum))
