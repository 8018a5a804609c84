-- rooms.lua -- GC on the workers: many tasks each holding a large heap and
-- waiting between messages, like game rooms or sessions.
--
-- Usage: hklua --threads=T rooms.lua [rooms] [records] [messages]
--        (defaults 16 rooms of 40000 records (~4 MiB each), 8000 messages)
-- Each room keeps `records` records (a table with a name, a score and a
-- small inventory table).  A message makes it build a temporary event of
-- 300 small tables, update 50 records and replace 20 (their old tables
-- become garbage), then reply.  The driver keeps two messages in flight
-- per room.  Between messages a room is parked: with idle GC on, the
-- collector thread may collect it there.
--
-- Output: "mark start", "mark done", then "result messages=N
-- worker_gc_ms=.. collector_gc_ms=.. collector_gc_cpu_ms=.. idle_gcs=..
-- checksum=C" (the GC figures of rt.stats(): worker_gc_ms needs hklua's
-- GC clock; the collector's CPU time leaves out the workers' turns on a
-- shared CPU).
local rt = require "hakrt"

local ROOMS = tonumber(arg and arg[1]) or 16
local RECORDS = tonumber(arg and arg[2]) or 40000
local M = tonumber(arg and arg[3]) or 8000

local function room(id, n, inbox, replies)
  local recs = {}
  for i = 1, n do
    recs[i] = {name = "player" .. id .. "_" .. i, score = i, inv = {i, i + 1, "sword"}}
  end
  replies:send(0, 0)
  local seed = id
  while true do
    local m = inbox:recv()
    if m == nil then break end
    local event = {}
    for k = 1, 300 do event[k] = {kind = "hit", at = m, k = k} end
    for k = 1, 50 do
      seed = (seed * 1103515245 + 12345) % 2147483648
      local r = recs[seed % n + 1]
      r.score = r.score + #event
    end
    for k = 1, 20 do
      seed = (seed * 1103515245 + 12345) % 2147483648
      local j = seed % n + 1
      recs[j] = {name = "player" .. id .. "_" .. j .. "_" .. m, score = m, inv = {j, m, "shield"}}
    end
    replies:send(id, m)
  end
  local sum = 0
  for i = 1, n do sum = sum + recs[i].score end
  return sum
end

local replies = rt.channel(ROOMS * 4)
local inboxes, hs = {}, {}
for r = 1, ROOMS do
  inboxes[r] = rt.channel(4)
  hs[r] = rt.spawn(room, r, RECORDS, inboxes[r], replies)
end
for r = 1, ROOMS do replies:recv() end
print("mark start")
local sent, got, check = 0, 0, 0
local function send_next()
  sent = sent + 1
  inboxes[sent % ROOMS + 1]:send(sent)
end
for i = 1, math.min(M, 2 * ROOMS) do send_next() end
while got < M do
  local id, m = replies:recv()
  got = got + 1
  check = check + id
  if sent < M then send_next() end
end
print("mark done")
local s = rt.stats()
for r = 1, ROOMS do inboxes[r]:close() end
for r = 1, ROOMS do assert(hs[r]:join()) end
print(string.format("result messages=%d worker_gc_ms=%.3f collector_gc_ms=%.3f collector_gc_cpu_ms=%.3f idle_gcs=%d checksum=%d",
                    M, s.gc.worker_ms, s.gc.collector_ms, s.collector.gc_cpu_ms, s.gc.idle_gcs, check))
