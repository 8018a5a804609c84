-- Small heaps (below collector_close_min, 1 MiB in this test) go to the
-- collector only once they have stayed parked 50 ms: a task that makes
-- garbage and sleeps 1 ms at a time is never collected there (except in a
-- sleep that a loaded machine stretched to 50 ms or more, which the task
-- counts), one that makes the same garbage and then sleeps 300 ms is.
local rt = require "hakrt"

-- rounds of 2000 small tables of garbage (a heap well below 1 MiB), each followed by a sleep;
-- returns the collector's collections of this task and the sleeps that
-- lasted 50 ms or more
local function task(rounds, sleep_ms)
  local rt = require "hakrt"
  local long = 0
  for r = 1, rounds do
    local junk = {}
    for i = 1, 2000 do junk[i] = {r, i, "g" .. i} end
    junk = nil
    local t0 = rt.now()
    rt.sleep(sleep_ms)
    if rt.now() - t0 >= 0.05 then long = long + 1 end
  end
  for _, t in ipairs(rt.stats().tasks) do
    if t.id == rt.self() then return t.gc.idle_gcs, long end
  end
end

local hb, hl = rt.spawn(task, 150, 1), rt.spawn(task, 2, 300)
local okb, nb, longb = hb:join()
local okl, nl = hl:join()
assert(okb, nb)
assert(okl, nl)
assert(nb <= longb, string.format("a task parked 1 ms at a time was collected on the collector %d times "
                                  .. "(%d of its sleeps lasted 50 ms or more)", nb, longb))
assert(nl >= 1, "a task parked 300 ms after making garbage was never collected on the collector")
print("idle_delay ok brief=" .. nb .. " long=" .. nl)
