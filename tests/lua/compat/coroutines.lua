-- Generators, wrap, status, errors inside coroutines, close.
local function gen(n)
  return coroutine.wrap(function() for i = 1, n do coroutine.yield(i * i) end end)
end
local s = 0
for v in gen(100) do s = s + v end
print("squares", s)
local co = coroutine.create(function(a, b)
  local c = coroutine.yield(a + b)
  local d, e = coroutine.yield(c * 2)
  return d + e
end)
print(coroutine.resume(co, 1, 2))
print(coroutine.resume(co, 10))
print(coroutine.resume(co, 3, 4))
print(coroutine.status(co), coroutine.resume(co))
local bad = coroutine.create(function() error("inside") end)
print(coroutine.resume(bad))
local many = {}
for i = 1, 2000 do
  many[i] = coroutine.create(function(x) coroutine.yield(x) return x * 2 end)
  coroutine.resume(many[i], i)
end
local total = 0
for i = 1, 2000 do local _, v = coroutine.resume(many[i]); total = total + v end
print("many", total)
local c2 = coroutine.create(function() coroutine.yield() end)
coroutine.resume(c2)
print(coroutine.close(c2), coroutine.status(c2))
