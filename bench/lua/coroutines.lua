-- coroutines.lua -- coroutine churn: many short-lived coroutines (each a
-- 208 B lua_State plus its stack and CallInfo list), generators built with
-- coroutine.wrap, and a producer -> filter -> consumer pipeline whose
-- stages pass small tables to each other.
--
-- Usage: lua coroutines.lua [rounds]   (default 2000)
-- Self-check: sums and counts against their closed forms.

local N = tonumber(arg and arg[1]) or 2000

local function fail(fmt, ...)
  error("coroutines: " .. string.format(fmt, ...))
end

local function range(n)
  return coroutine.wrap(function()
    for i = 1, n do coroutine.yield(i) end
  end)
end

local function filter(pred, gen)
  return coroutine.wrap(function()
    for v in gen do if pred(v) then coroutine.yield(v) end end
  end)
end

local function map(f, gen)
  return coroutine.wrap(function()
    for v in gen do coroutine.yield(f(v)) end
  end)
end

local checksum = 0
for round = 1, N do
  -- Churn: 500 coroutines, each resumed a few times and left to die.
  local alive, total = 0, 0
  for i = 1, 500 do
    local co = coroutine.create(function(a)
      local b = coroutine.yield(a + 1)
      local c = coroutine.yield(b * 2)
      return a + b + c
    end)
    local _, x = coroutine.resume(co, i)
    local _, y = coroutine.resume(co, x)
    local ok, z = coroutine.resume(co, y)
    if not ok or coroutine.status(co) ~= "dead" then fail("round %d: coroutine %d", round, i) end
    total = total + z -- i + (i+1) + 2(i+1)
    if i % 50 == 0 then
      alive = alive + 1 -- a few stay suspended and are collected later
      coroutine.resume(coroutine.create(function() coroutine.yield() end))
    end
  end
  local want = 0
  for i = 1, 500 do want = want + 4 * i + 3 end
  if total ~= want then fail("round %d: churn total %d, want %d", round, total, want) end

  -- A pipeline of generators: squares of the odd numbers up to 400.
  local n = 400
  local s = 0
  for v in map(function(x) return { x * x } end,
               filter(function(x) return x % 2 == 1 end, range(n))) do
    s = s + v[1]
  end
  local m = n // 2 -- sum of (2k-1)^2 for k = 1..m = m(2m-1)(2m+1)/3
  if s ~= m * (2 * m - 1) * (2 * m + 1) // 3 then fail("round %d: pipeline %d", round, s) end

  -- Producer/consumer through a coroutine that yields message tables.
  local producer = coroutine.wrap(function()
    for i = 1, 300 do coroutine.yield({ seq = i, body = "msg" .. i }) end
    return nil
  end)
  local got, last = 0, 0
  while true do
    local msg = producer()
    if not msg then break end
    if msg.seq ~= last + 1 then fail("round %d: message out of order", round) end
    last = msg.seq
    got = got + #msg.body
  end

  checksum = (checksum + total + s + got + alive) % 1000000007
end

print(string.format("coroutines %d checksum %d", N, checksum))
