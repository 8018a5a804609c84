-- oo_sim.lua -- an object-oriented simulation with many small objects:
-- classes with metatables and inheritance, immutable 2-D vectors with
-- arithmetic metamethods (a new object per operation), bodies that move,
-- collide and spawn short-lived events.
--
-- Usage: lua oo_sim.lua [steps]   (default 700)
-- Self-check: the same simulation is run on plain integers beside the
-- objects (integer arithmetic, so exact), and both must agree at the end.

local N = tonumber(arg and arg[1]) or 700
local BODIES = 1000
local W = 1 << 20

local function fail(fmt, ...)
  error("oo_sim: " .. string.format(fmt, ...))
end

-- Classes ------------------------------------------------------------------
local Vec = {}
Vec.__index = Vec
local function vec(x, y) return setmetatable({ x = x, y = y }, Vec) end
function Vec.__add(a, b) return vec(a.x + b.x, a.y + b.y) end
function Vec.__sub(a, b) return vec(a.x - b.x, a.y - b.y) end
function Vec.__mul(a, k) return vec(a.x * k, a.y * k) end
function Vec.__eq(a, b) return a.x == b.x and a.y == b.y end
function Vec:wrap() return vec(self.x % W, self.y % W) end
function Vec:manhattan() return math.abs(self.x) + math.abs(self.y) end

local Entity = {}
Entity.__index = Entity
function Entity.new(cls, id, pos) return setmetatable({ id = id, pos = pos }, cls) end
function Entity:describe() return self.kind .. "#" .. self.id end

local Body = setmetatable({ kind = "body" }, { __index = Entity })
Body.__index = Body
function Body.new(id, pos, vel)
  local b = Entity.new(Body, id, pos)
  b.vel = vel
  b.hits = 0
  return b
end
function Body:step(gravity)
  self.vel = self.vel + gravity
  self.pos = (self.pos + self.vel):wrap()
end

local Event = setmetatable({ kind = "event" }, { __index = Entity })
Event.__index = Event
function Event.new(id, pos, a, b)
  local e = Entity.new(Event, id, pos)
  e.a, e.b = a, b
  return e
end

-- The same world twice ----------------------------------------------------
math.randomseed(42)
local bodies, px, py, vx, vy = {}, {}, {}, {}, {}
for i = 1, BODIES do
  local x, y = math.random(0, W - 1), math.random(0, W - 1)
  local dx, dy = math.random(-500, 500), math.random(-500, 500)
  bodies[i] = Body.new(i, vec(x, y), vec(dx, dy))
  px[i], py[i], vx[i], vy[i] = x, y, dx, dy
end

local events, events_plain, described = 0, 0, 0
for step = 1, N do
  local gravity = vec(step % 3 - 1, 1 - step % 2)
  local gx, gy = step % 3 - 1, 1 - step % 2
  local log = {}
  for i = 1, BODIES do
    local b = bodies[i]
    b:step(gravity)
    vx[i], vy[i] = vx[i] + gx, vy[i] + gy
    px[i], py[i] = (px[i] + vx[i]) % W, (py[i] + vy[i]) % W
    -- Near neighbours (in index order) "collide" and make an event.
    local o = bodies[i % BODIES + 1]
    if (b.pos - o.pos):manhattan() < W // 8 then
      b.hits = b.hits + 1
      log[#log + 1] = Event.new(step * BODIES + i, b.pos, b, o)
    end
    local j = i % BODIES + 1
    if math.abs(px[i] - px[j]) + math.abs(py[i] - py[j]) < W // 8 then
      events_plain = events_plain + 1
    end
  end
  events = events + #log
  for k = 1, #log, 50 do
    described = described + #(log[k]:describe() .. "@" .. log[k].a:describe())
  end
end

for i = 1, BODIES do
  local b = bodies[i]
  if b.pos ~= vec(px[i], py[i]) or b.vel ~= vec(vx[i], vy[i]) then
    fail("body %d: objects (%d,%d) and integers (%d,%d) disagree",
         i, b.pos.x, b.pos.y, px[i], py[i])
  end
end
if events ~= events_plain then fail("events %d vs %d", events, events_plain) end

local sum = 0
for i = 1, BODIES do sum = (sum + px[i] * 3 + py[i] + bodies[i].hits) % 1000000007 end
print(string.format("oo_sim %d checksum %d %d %d", N, events, sum, described))
