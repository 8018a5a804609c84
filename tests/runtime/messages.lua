-- Many tasks passing many messages: P producers, C consumers on one
-- channel, every message checked, then a ring of tasks passing a counter.
local rt = require "hakrt"
local P, C, N = 4, 3, tonumber(arg and arg[1]) or 2000

local work, results = rt.channel(8), rt.channel(64)
local function producer(ch, p, n)
  for i = 1, n do
    ch:send({p = p, i = i, s = string.rep("x", i % 50), f = i + 0.5})
  end
  return n
end
local function consumer(ch, out)
  local count, sum = 0, 0
  while true do
    local m = ch:recv()
    if m == nil then break end
    assert(type(m.p) == "number" and math.type(m.i) == "integer", "bad message")
    assert(#m.s == m.i % 50, "string damaged")
    assert(m.f == m.i + 0.5 and math.type(m.f) == "float", "float damaged")
    count, sum = count + 1, sum + m.i
  end
  out:send(count, sum)
end
local ps, cs = {}, {}
for p = 1, P do ps[p] = rt.spawn(producer, work, p, N) end
for c = 1, C do cs[c] = rt.spawn(consumer, work, results) end
for p = 1, P do
  local ok, n = ps[p]:join()
  assert(ok and n == N, "producer failed")
end
work:close()
local count, sum = 0, 0
for c = 1, C do
  local n, s = results:recv()
  count, sum = count + n, sum + s
end
assert(count == P * N, "lost messages: " .. count)
assert(sum == P * N * (N + 1) // 2, "wrong sum")
for c = 1, C do assert(cs[c]:join()) end

-- A ring: each task adds one and passes it on.
local R, ROUNDS = 6, 50
local chans = {}
for i = 1, R do chans[i] = rt.channel(1) end
local ring = {}
for i = 1, R do
  ring[i] = rt.spawn(function(inp, out, rounds)
    for _ = 1, rounds do out:send(inp:recv() + 1) end
  end, chans[i], chans[i % R + 1], ROUNDS)
end
chans[1]:send(0)
for i = 1, R do assert(ring[i]:join()) end
assert(chans[1]:recv() == R * ROUNDS, "ring lost a step")
print("messages ok", count)
