-- game_loop.lua -- a game loop: each frame updates a world of entities,
-- spawns and retires bullets and particles (short-lived tables), formats
-- some HUD text, and then runs one bounded GC step, the way games pace
-- Lua's collector (automatic collection is stopped; the step is the only
-- collection).  The pause of that step is the frame's GC cost.
--
-- Usage: lua game_loop.lua [frames]   (default 2000)
-- Self-check: entity and bullet counts follow the spawn/despawn rules
-- (replayed on counters), and the heap stays bounded: the per-frame step
-- keeps up with the garbage.

local N = tonumber(arg and arg[1]) or 2000
local ENTITIES = 2000
local STEP_KB = 200 -- the GC step per frame, in KB of "allocation" credit

local function fail(fmt, ...)
  error("game_loop: " .. string.format(fmt, ...))
end

collectgarbage("stop")
math.randomseed(42)

local entities = {}
for i = 1, ENTITIES do
  entities[i] = { id = i, x = math.random(0, 1000), y = math.random(0, 1000),
                  vx = math.random(-3, 3), vy = math.random(-3, 3),
                  hp = 100, tags = { "npc", i % 2 == 0 and "even" or "odd" } }
end

-- The level: a static world of tiles the collector traverses every cycle.
local level = {}
for i = 1, 20000 do
  level[i] = { kind = i % 5 == 0 and "wall" or "floor", cost = i % 9, items = { i % 3 } }
end

local bullets, particles = {}, {}
local fired, expired, bursts, hud_bytes = 0, 0, 0, 0
local peak_kb, neighbours = 0, 0
for frame = 1, N do
  -- Update every entity; some fire a bullet.
  for i = 1, ENTITIES do
    local e = entities[i]
    e.x, e.y = (e.x + e.vx) % 1000, (e.y + e.vy) % 1000
    if (i + frame) % 97 == 0 then
      bullets[#bullets + 1] = { x = e.x, y = e.y, dx = e.vx * 4, dy = e.vy * 4,
                                ttl = 30, owner = e }
      fired = fired + 1
    end
  end

  -- Broad phase: a spatial grid rebuilt every frame (a table of cell
  -- lists), then a neighbour count for one entity in 50.
  local grid = {}
  for i = 1, ENTITIES do
    local e = entities[i]
    local cell = (e.x // 32) * 64 + e.y // 32
    local list = grid[cell]
    if list then list[#list + 1] = e else grid[cell] = { e } end
  end
  for i = 1, ENTITIES, 50 do
    local e = entities[i]
    local list = grid[(e.x // 32) * 64 + e.y // 32]
    if not list then fail("frame %d: entity %d not in the grid", frame, i) end
    neighbours = neighbours + #list
  end

  -- Move bullets; expired ones burst into particles and are dropped.
  local live = {}
  for _, b in ipairs(bullets) do
    b.x, b.y, b.ttl = b.x + b.dx, b.y + b.dy, b.ttl - 1
    if b.ttl > 0 then
      live[#live + 1] = b
    else
      expired = expired + 1
      for k = 1, 4 do
        particles[#particles + 1] = { x = b.x, y = b.y, life = 5 + k, color = { k, k, k } }
      end
      bursts = bursts + 1
    end
  end
  bullets = live

  local alive = {}
  for _, p in ipairs(particles) do
    p.life = p.life - 1
    if p.life > 0 then alive[#alive + 1] = p end
  end
  particles = alive

  -- HUD text, rebuilt every frame.
  local hud = string.format("frame %d  bullets %d  particles %d  fps %.1f",
                            frame, #bullets, #particles, 60 - frame % 7 / 10)
  hud_bytes = hud_bytes + #hud

  -- One bounded collector step per frame.
  collectgarbage("step", STEP_KB)
  local kb = collectgarbage("count")
  if kb > peak_kb then peak_kb = kb end
end

-- Replay the spawn rules on counters.
local want_fired = 0
for frame = 1, N do
  for i = 1, ENTITIES do if (i + frame) % 97 == 0 then want_fired = want_fired + 1 end end
end
if #level ~= 20000 or level[20000].items[1] ~= 20000 % 3 then fail("level") end
if fired ~= want_fired then fail("fired %d, want %d", fired, want_fired) end
if fired - expired ~= #bullets then fail("bullets %d, want %d", #bullets, fired - expired) end
if expired ~= bursts then fail("bursts") end
-- Bounded heap: a collector that keeps up holds the live world plus a few
-- frames of garbage, far below what the run allocated.
if peak_kb > 64 * 1024 then fail("heap grew to %.0f KB: the GC step does not keep up", peak_kb) end

collectgarbage("restart")
print(string.format("game_loop %d checksum %d %d %d %d", N, fired, expired, hud_bytes, neighbours))
if os.getenv("GAME_LOOP_DEBUG") then print("peak KB", peak_kb) end
