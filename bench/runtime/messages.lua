-- messages.lua -- a producer/consumer pipeline of small tables and strings.
--
-- Usage: hklua --threads=T messages.lua [messages] [capacity]
--        (defaults 200000 and 64)
-- A spawned producer sends `messages` values through one channel of
-- `capacity`: odd ones a small table (a string, a nested table, numbers),
-- even ones a string of 6..25 bytes; then it closes the channel.  The main
-- task receives them and checks every one against what the producer must
-- have sent.  Each value is deep-copied into the receiver's state, so every
-- message is an allocation in one state and a free in another.
--
-- Output: "mark start" and "mark done" around the pipeline (the runner
-- timestamps these lines: messages per second is its wall clock between
-- them), then "result messages=N checksum=C".

local rt = require "hakrt"

local N = tonumber(arg and arg[1]) or 200000
local CAP = tonumber(arg and arg[2]) or 64

-- Runs in its own task: no upvalues but _ENV, data through the arguments.
local function producer(ch, n)
  for i = 1, n do
    if i % 2 == 1 then
      ch:send({id = i, name = "item" .. i, tags = {"a", "b", i % 7}, price = i * 0.25})
    else
      ch:send("msg:" .. i .. ":" .. string.rep("x", i % 16))
    end
  end
  ch:close()
  return n
end

local function check(i, v)
  if i % 2 == 1 then
    if type(v) ~= "table" or v.id ~= i or v.name ~= "item" .. i or v.tags[1] ~= "a"
        or v.tags[3] ~= i % 7 or v.price ~= i * 0.25 then
      error(string.format("messages: message %d: wrong table", i))
    end
    return v.id
  end
  if v ~= "msg:" .. i .. ":" .. string.rep("x", i % 16) then
    error(string.format("messages: message %d: wrong string %q", i, tostring(v)))
  end
  return #v
end

local ch = rt.channel(CAP)
print("mark start")
local h = rt.spawn(producer, ch, N)
local got, sum = 0, 0
while true do
  local v, err = ch:recv()
  if v == nil then
    if err ~= "closed" then error("messages: recv: " .. tostring(err)) end
    break
  end
  got = got + 1
  sum = sum + check(got, v)
end
local ok, sent = h:join()
print("mark done")
if not ok then error("messages: producer failed: " .. tostring(sent)) end
if got ~= N or sent ~= N then
  error(string.format("messages: sent %s, received %d, want %d", tostring(sent), got, N))
end
print(string.format("result messages=%d checksum=%d", got, sum))
