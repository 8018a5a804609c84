-- buffers.lua -- a pipeline of 64 KiB buffers: producer -> relay -> main.
--
-- Usage: hklua --threads=T buffers.lua [buffers] [size] [capacity]
--        (defaults 10000, 65536 and 16)
-- The producer makes a new rt.buffer(size) per message, writes its
-- sequence number at both ends and sends it; a relay task stamps it and
-- sends it on; the main task checks both ends and the stamp, then drops
-- it.  A buffer's bytes move with it (no copy), so every buffer is
-- allocated on the producer's worker and freed wherever the main task
-- collects it.  Two hops (sends) per buffer.
--
-- Output: "mark start" and "mark done" around the pipeline (the runner's
-- wall clock between them gives hops per second), then
-- "result hops=H checksum=C".

local rt = require "hakrt"

local N = tonumber(arg and arg[1]) or 10000
local SIZE = tonumber(arg and arg[2]) or 65536
local CAP = tonumber(arg and arg[3]) or 16

local function producer(out, n, size)
  local rt = require "hakrt"
  for i = 1, n do
    local b = rt.buffer(size)
    local seq = string.pack("<I4", i)
    b:set(1, seq)
    b:set(size - 3, seq)
    out:send(b)
  end
  out:close()
  return n
end

local function relay(inp, out)
  local n = 0
  while true do
    local b = inp:recv()
    if b == nil then break end
    b:set(5, "R")
    out:send(b)
    n = n + 1
  end
  out:close()
  return n
end

local a, b = rt.channel(CAP), rt.channel(CAP)
print("mark start")
local hp = rt.spawn(producer, a, N, SIZE)
local hr = rt.spawn(relay, a, b)
local got, sum = 0, 0
while true do
  local buf, err = b:recv()
  if buf == nil then
    if err ~= "closed" then error("buffers: recv: " .. tostring(err)) end
    break
  end
  got = got + 1
  local head = string.unpack("<I4", buf:sub(1, 4))
  local tail = string.unpack("<I4", buf:sub(SIZE - 3, SIZE))
  if #buf ~= SIZE or head ~= got or tail ~= got or buf:sub(5, 5) ~= "R" then
    error(string.format("buffers: buffer %d: wrong contents (#%d, %d, %d)", got, #buf, head, tail))
  end
  sum = sum + head + #buf
end
local ok1, sent = hp:join()
local ok2, relayed = hr:join()
print("mark done")
if not ok1 then error("buffers: producer failed: " .. tostring(sent)) end
if not ok2 then error("buffers: relay failed: " .. tostring(relayed)) end
if got ~= N or sent ~= N or relayed ~= N then
  error(string.format("buffers: sent %s, relayed %s, received %d, want %d",
                      tostring(sent), tostring(relayed), got, N))
end
print(string.format("result hops=%d checksum=%d", 2 * N, sum))
