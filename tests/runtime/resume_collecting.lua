-- A worker resuming a task the collector is collecting: a task with a large
-- heap parks on a channel after making garbage; a pinger sends to it a few
-- milliseconds later (10), while the collector is (most likely) in the middle of
-- its cycle: the wake must hand the task back after the current step, and
-- every message must arrive.
local rt = require "hakrt"
local ch, back = rt.channel(1), rt.channel(1)

local scale = tonumber((...)) or 1
local ROUNDS, KEEP = 30 // scale, 150000 // scale

-- It says when it is about to wait: the pinger's message comes 10 ms
-- later, so the task is parked by then however slow the build is.
local big = rt.spawn(function(ch, back, rounds, keep_n)
  local keep = {}
  for i = 1, keep_n do keep[i] = {i} end
  local got = 0
  for r = 1, rounds do
    local junk = {}
    for i = 1, keep_n // 4 do junk[i] = {r} end
    junk = nil
    back:send(r)
    local v = ch:recv()
    assert(v == r, "message " .. tostring(v) .. " in round " .. r)
    got = got + 1
  end
  return got, #keep
end, ch, back, ROUNDS, KEEP)

for r = 1, ROUNDS do
  assert(back:recv() == r)
  rt.sleep(10)
  ch:send(r)
end
local ok, got, kept = big:join()
assert(ok and got == ROUNDS and kept == KEEP, tostring(got))
local s = rt.stats()
print("resume ok interrupted=" .. s.collector.interrupted .. " idle_gcs=" .. s.collector.idle_gcs)
