-- The watchdog: a task that spins without yielding is reported (its id and
-- traceback), and past the time limit it is stopped with "time limit
-- exceeded", even when it catches errors; the other tasks go on.
local rt = require "hakrt"
local spinner = rt.spawn(function()
  local function spin() while true do end end
  while true do pcall(spin) end -- catching the error does not save it
end)
local other = rt.spawn(function()
  local rt = require "hakrt"
  local n = 0
  for i = 1, 20 do rt.sleep(5) n = n + i end
  return n
end)
local ok, err = spinner:join()
assert(not ok and err:find("task " .. spinner:id() .. ": time limit exceeded", 1, true), err)
local ok2, n = other:join()
assert(ok2 and n == 210)
print("watchdog ok")
