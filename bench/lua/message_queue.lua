-- message_queue.lua -- actors exchanging messages through mailboxes.
-- Each message is a small table with a formatted string payload and a body
-- table; mailboxes are FIFO queues (head/tail indices over one table, whose
-- parts grow, move into the hash part and shrink as the window slides);
-- a router fans messages out, workers consume them and sometimes reply.
--
-- Usage: lua message_queue.lua [messages]   (default 400000)
-- Self-check: every message sent is received exactly once, in order per
-- sender and mailbox, and the payload sums agree.

local N = tonumber(arg and arg[1]) or 400000
local ACTORS = 64

local function fail(fmt, ...)
  error("message_queue: " .. string.format(fmt, ...))
end

local Queue = {}
Queue.__index = Queue
function Queue.new() return setmetatable({ head = 1, tail = 0, items = {} }, Queue) end
function Queue:push(v)
  self.tail = self.tail + 1
  self.items[self.tail] = v
end
function Queue:pop()
  if self.head > self.tail then return nil end
  local v = self.items[self.head]
  self.items[self.head] = nil
  self.head = self.head + 1
  if self.head > self.tail then -- empty: start a fresh window
    self.head, self.tail, self.items = 1, 0, {}
  end
  return v
end
function Queue:len() return self.tail - self.head + 1 end

math.randomseed(42)
local mailbox, last_seq, received = {}, {}, {}
for a = 1, ACTORS do
  mailbox[a] = Queue.new()
  last_seq[a] = {}
  received[a] = 0
end

local sent, replies, delivered, payload_sent, payload_got = 0, 0, 0, 0, 0
local seq = {}
local function send(from, to, kind, value)
  seq[from] = (seq[from] or 0) + 1
  local msg = { from = from, to = to, kind = kind, seq = seq[from],
                payload = string.format("%s:%d->%d #%d", kind, from, to, value),
                body = { value = value, route = { from, to } } }
  mailbox[to]:push(msg)
  sent = sent + 1
  payload_sent = payload_sent + value
end

local function receive(a, msg)
  if msg.to ~= a then fail("message for %d delivered to %d", msg.to, a) end
  local prev = last_seq[a][msg.from] or 0
  if msg.seq <= prev then fail("out of order from %d to %d", msg.from, a) end
  last_seq[a][msg.from] = msg.seq
  received[a] = received[a] + 1
  delivered = delivered + 1
  payload_got = payload_got + msg.body.value
  local v = tonumber(msg.payload:match("#(%d+)$"))
  if v ~= msg.body.value then fail("payload %q", msg.payload) end
  -- Requests get a reply, which is itself a message.
  if msg.kind == "req" and sent < N then
    send(a, msg.from, "rep", v % 1000)
    replies = replies + 1
  end
end

while sent < N do
  -- A burst of requests and events from random senders...
  local burst = math.random(1, 200)
  for _ = 1, burst do
    if sent >= N then break end
    local from, to = math.random(ACTORS), math.random(ACTORS)
    send(from, to, math.random(3) == 1 and "req" or "evt", math.random(100000))
  end
  -- ... then each actor drains part of its mailbox.
  for a = 1, ACTORS do
    local box = mailbox[a]
    for _ = 1, math.random(0, box:len()) do receive(a, box:pop()) end
  end
end
for a = 1, ACTORS do -- drain what is left
  local box = mailbox[a]
  while box:len() > 0 do receive(a, box:pop()) end
end

if delivered ~= sent then fail("sent %d, delivered %d", sent, delivered) end
if payload_got ~= payload_sent then fail("payload sums %d vs %d", payload_got, payload_sent) end
local total = 0
for a = 1, ACTORS do total = total + received[a] end
if total ~= sent then fail("per-actor counts add up to %d", total) end

print(string.format("message_queue %d checksum %d %d %d", N, sent, replies, payload_sent))
